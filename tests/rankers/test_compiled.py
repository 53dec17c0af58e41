"""Compiled inference (lleaves for LightGBM, generated C for CatBoost) scores like the
libraries, and is used only when it does."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from gateway.features.store import feature_matrix
from gateway.rankers.compiled import cache_path, load_compiled, max_difference
from gateway.rankers.libraries import load_ranker
from gateway.serving.state import attach_compiled, build_snapshot, compile_in_background
from tests.conftest import train_tiny, write_config


def _requests(store, n: int = 40):
    rng = np.random.default_rng(3)
    day0, days = store.manifest["day0"], store.manifest["days"]
    users = rng.integers(0, len(store.user_ids), n)
    seconds = rng.integers(day0 + 86400, day0 + days * 86400, n)
    return users, seconds


def _config(tmp_path, models):
    """A config whose arms are ``models`` (the store and the database are not read)."""
    return write_config(tmp_path / "config.yaml", db="sqlite://", features_dir=tmp_path, models=models)


def test_compiled_forest_scores_like_lightgbm_on_the_whole_catalogue(tiny_models, tiny_store):
    ranker = load_ranker(tiny_models / "control")
    forest = load_compiled(ranker, compile_if_missing=True)
    users, seconds = _requests(tiny_store)
    matrix = feature_matrix(tiny_store.compute(users, seconds), ranker.features)
    native = ranker.booster.predict(matrix)
    compiled = forest.predict(matrix)
    assert matrix.shape[0] == len(users) * len(tiny_store.post_ids)
    assert max_difference(native, compiled) <= 1e-12
    # extreme and missing values take the same branches as in LightGBM
    odd = matrix[:500].copy()
    odd[::3] = np.nan
    odd[1::3] *= -1e6
    odd[2::3] *= 1e6
    assert max_difference(ranker.booster.predict(odd), forest.predict(odd)) <= 1e-12


def test_compiled_oblivious_trees_score_like_catboost_on_the_whole_catalogue(tiny_models, tiny_store):
    ranker = load_ranker(tiny_models / "test")
    forest = load_compiled(ranker, compile_if_missing=True)
    users, seconds = _requests(tiny_store)
    features = tiny_store.compute(users, seconds)
    assert (
        max_difference(ranker.native_predict(features), forest.predict(ranker.compiled_input(features)))
        <= 1e-12
    )
    odd = {name: values[:600].copy() for name, values in features.items()}
    for values in odd.values():
        values[::3] = np.nan
        values[1::3] *= -1e6
        values[2::3] *= 1e6
    assert max_difference(ranker.native_predict(odd), forest.predict(ranker.compiled_input(odd))) <= 1e-12


def test_the_cache_is_keyed_by_the_model_file(tiny_models, tiny_store, tmp_path):
    model_dir = tmp_path / "control"
    shutil.copytree(tiny_models / "control", model_dir)
    ranker = load_ranker(model_dir)
    assert load_compiled(ranker, compile_if_missing=False) is not None  # copied cache
    other = tmp_path / "other"
    train_tiny("control", tiny_store, other, seed=5, rounds=20)
    other_ranker = load_ranker(other)
    assert cache_path(other_ranker) != cache_path(ranker)
    # a stale object file of another model is never picked up for this one
    (other / "compiled").mkdir(exist_ok=True)
    shutil.copy(cache_path(ranker), other / "compiled")
    assert load_compiled(other_ranker, compile_if_missing=False) is None


def test_a_forest_that_scores_differently_is_refused(tiny_models, tiny_store, tmp_path):
    other = tmp_path / "other"
    train_tiny("control", tiny_store, other, seed=6, rounds=20)
    wrong = load_compiled(load_ranker(other), compile_if_missing=True)
    ranker = load_ranker(tiny_models / "control")
    probe = tiny_store.compute(*_requests(tiny_store, 2))
    with pytest.raises(ValueError, match="differs from lightgbm"):
        ranker.attach_compiled(wrong, probe)
    assert ranker.compiled is None and ranker.inference.startswith("native")


def test_the_gateway_compiles_missing_forests_in_the_background(tiny_models, tiny_store, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    shutil.rmtree(models / "control" / "compiled", ignore_errors=True)
    shutil.rmtree(models / "test" / "compiled", ignore_errors=True)
    config = _config(tmp_path, models)
    snapshot = build_snapshot(config, tiny_store)
    control = snapshot.rankers["control"]
    assert control.inference == "native (lightgbm)" and len(snapshot.pending_compile) == 2
    users, seconds = _requests(tiny_store, 3)
    before = control.score(tiny_store, users, seconds)
    compile_in_background(snapshot).join(timeout=300)
    assert control.inference == "compiled (lleaves)"
    assert max_difference(before.ravel(), control.score(tiny_store, users, seconds).ravel()) <= 1e-9
    # the next load finds the cache and starts compiled
    again = build_snapshot(config, tiny_store)
    assert again.rankers["control"].inference == "compiled (lleaves)" and not again.pending_compile
    assert again.rankers["test"].inference == "compiled (C, oblivious trees)"


def test_compiled_inference_can_be_switched_off(tiny_models, tiny_store, tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_SERVING__COMPILED_INFERENCE", "false")
    config = _config(tmp_path, tiny_models)
    snapshot = build_snapshot(config, tiny_store)
    assert snapshot.rankers["control"].inference == "native (lightgbm)" and not snapshot.pending_compile
    assert snapshot.rankers["test"].inference == "native (catboost)"
    probe = tiny_store.compute(*_requests(tiny_store, 1))
    assert attach_compiled(snapshot.rankers["control"], probe, compile_if_missing=False)


def test_serving_settings_reach_the_snapshot(tiny_models, tiny_store, tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_SERVING__MOOD_WEIGHT", "0.2")  # was ignored before: always 0.5
    monkeypatch.setenv("RECSYS_SERVING__PREDICT_THREADS", "1")
    config = _config(tmp_path, tiny_models)
    snapshot = build_snapshot(config, tiny_store)
    assert snapshot.mood_weight == 0.2
    assert all(ranker.threads == 1 for ranker in snapshot.rankers.values())
