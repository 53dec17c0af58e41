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
