"""Training both arms on the tiny world: manifests, reproducibility, the configured models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gateway.rankers.libraries import load_ranker
from tests.conftest import train_tiny

MANIFEST_KEYS = {
    "model_version",
    "features",
    "feature_set_version",
    "feature_store_version",
    "training_window",
    "params",
    "metrics",
    "training_seconds",
    "seed",
}


@pytest.fixture(scope="module")
def trained(tiny_models):
    return tiny_models


def test_manifests_describe_the_models(trained, tiny_store):
    for arm, kind in (("control", "lightgbm"), ("test", "catboost")):
        manifest = json.loads((trained / arm / "manifest.json").read_text())
        assert manifest.keys() >= MANIFEST_KEYS
        assert manifest["kind"] == kind and manifest["feature_store_version"] == tiny_store.version
        assert 0.5 < manifest["metrics"]["validation_auc"] < 1.0
        ranker = load_ranker(trained / arm, tiny_store.manifest["feature_set_version"])
        scores = ranker.score(tiny_store, np.array([0, 1]), np.array([1_639_000_000, 1_639_500_000]))
        assert scores.shape == (2, len(tiny_store.post_ids)) and np.all((scores > 0) & (scores < 1))


def test_training_is_reproducible(tiny_store, tmp_path, trained):
    train_tiny("control", tiny_store, tmp_path / "again")  # the same call as the tiny_models fixture
    first = (trained / "control" / "model.txt").read_text()
    second = (tmp_path / "again" / "model.txt").read_text()
    strip = lambda text: [line for line in text.splitlines() if not line.startswith("[")]  # noqa: E731
    assert strip(first) == strip(second)


def test_config_yaml_states_the_libraries_defaults():
    """The shipped config.yaml and a config without ``training.models`` train the same models."""
    from pathlib import Path

    from gateway.config import TrainingSettings, load_settings
    from gateway.rankers.libraries import library

    shipped = load_settings(Path(__file__).resolve().parents[1] / "config.yaml").training.models
    default = TrainingSettings().models
    assert shipped.keys() == default.keys() == {"control", "test"}
    for arm, spec in shipped.items():
        assert (spec.library, spec.feature_set) == (default[arm].library, default[arm].feature_set)
        defaults = library(spec.library).DEFAULT_PARAMS
        assert {**defaults, **spec.params} == {**defaults, **default[arm].params} == defaults


def test_the_configured_library_feature_set_and_params_are_used(tiny_store, tmp_path):
    from gateway.config import ModelSettings
    from gateway.features.definitions import TASTE
    from gateway.rankers.model_dir import ModelError
    from gateway.training import train_arm

    def train(spec: ModelSettings):
        return train_arm(
            "other",
            tiny_store,
            tmp_path / "other",
            model=spec,
            seed=1,
            max_rows=20_000,
            validation_days=7,
            evaluation_days=7,
            max_rounds=10,
        )

    manifest = train(ModelSettings(library="lightgbm", feature_set="taste", params={"num_leaves": 7}))
    assert manifest["kind"] == "lightgbm" and manifest["features"] == list(TASTE)
    assert manifest["params"]["num_leaves"] == 7 and manifest["params"]["learning_rate"] == 0.1
    assert "early_stopping_rounds" not in manifest["params"]  # a training setting, not the model's
    assert load_ranker(tmp_path / "other").features == list(TASTE)
    with pytest.raises(ModelError, match="unknown feature set 'nope'"):
        train(ModelSettings(library="lightgbm", feature_set="nope"))
    with pytest.raises(ModelError, match="unknown model kind 'xgboost'"):
        train(ModelSettings(library="xgboost", feature_set="classic"))


def test_arms_trained_in_one_process_compute_the_training_features_once(tiny_store, tmp_path, monkeypatch):
    """Both arms read the one store: the second arm on the same sample reuses the first's rows
    and features; another sample computes its own."""
    import gateway.training as training

    calls = []
    original = training.features_for_views
    monkeypatch.setattr(training, "features_for_views", lambda store, views: calls.append(1) or original(store, views))
    training._ROWS.clear()
    train_tiny("control", tiny_store, tmp_path / "control", seed=3, max_rows=5_000, rounds=5)
    train_tiny("test", tiny_store, tmp_path / "test", seed=3, max_rows=5_000, rounds=5)
    assert len(calls) == 2  # training and validation views, once
    train_tiny("control", tiny_store, tmp_path / "other", seed=4, max_rows=5_000, rounds=5)
    assert len(calls) == 4
    training._ROWS.clear()
