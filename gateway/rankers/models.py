"""Model rankers: LightGBM (control) and CatBoost (test) over the shared feature store."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from gateway.features.online import FeatureStore, feature_matrix
from gateway.rankers.compiled import MAX_ABS_DIFFERENCE, CompiledForest, max_difference


def catboost_frame(features: dict[str, np.ndarray], names: list[str], categorical: list[str]) -> pd.DataFrame:
    """CatBoost wants integer codes for categorical columns."""
    return pd.DataFrame({n: features[n].astype(np.int64) if n in categorical else features[n] for n in names})


class LightGBMRanker:
    """LightGBM's booster, or its compiled forest once one is attached (same scores, faster)."""

    def __init__(self, booster, manifest: dict, threads: int = 0) -> None:
        self.booster = booster
        self.manifest = manifest
        self.name = manifest["arm"]
        self.version = manifest["model_version"]
        self.features = list(manifest["features"])
        self.threads = threads  # 0: all cores (batch jobs); serving uses 1 per request
        self.compiled: CompiledForest | None = None

    @property
    def inference(self) -> str:
        return "compiled (lleaves)" if self.compiled is not None else "native (lightgbm)"

    def predict(self, features: dict[str, np.ndarray]) -> np.ndarray:
        matrix = feature_matrix(features, self.features)
        compiled = self.compiled  # one read: a concurrent attach cannot split a request
        if compiled is not None:
            return compiled.predict(matrix, self.threads or os.cpu_count() or 1)
        return self.booster.predict(matrix, num_threads=self.threads)

    def attach_compiled(self, compiled: CompiledForest, probe: dict[str, np.ndarray]) -> float:
        """Serve with ``compiled`` from now on if it scores the probe like the booster."""
        matrix = feature_matrix(probe, self.features)
        diff = max_difference(
            compiled.predict(matrix), self.booster.predict(matrix, num_threads=self.threads)
        )
        if not diff <= MAX_ABS_DIFFERENCE:
            raise ValueError(f"compiled model differs from LightGBM by {diff:.3g} on the probe")
        self.compiled = compiled
        return diff

    def score(self, store: FeatureStore, user_idx, seconds, features=None) -> np.ndarray:
        features = features if features is not None else store.compute(user_idx, seconds)
        return self.predict(features).reshape(len(user_idx), len(store.post_ids))


class CatBoostRanker:
    inference = "native (catboost)"

    def __init__(self, model, manifest: dict, threads: int = 0) -> None:
        self.model = model
        self.manifest = manifest
        self.name = manifest["arm"]
        self.version = manifest["model_version"]
        self.features = list(manifest["features"])
        self.categorical = [f for f in self.features if f in set(manifest["categorical"])]
        self.threads = threads  # 0: all cores

    def predict(self, features: dict[str, np.ndarray]) -> np.ndarray:
        # Models with native categorical columns need a DataFrame (slow: CatBoost hashes every
        # categorical value); numeric-only models take the float32 matrix directly.
        data = (
            catboost_frame(features, self.features, self.categorical)
            if self.categorical
            else feature_matrix(features, self.features)
        )
        return self.model.predict(data, prediction_type="Probability", thread_count=self.threads or -1)[:, 1]

    def score(self, store: FeatureStore, user_idx, seconds, features=None) -> np.ndarray:
        features = features if features is not None else store.compute(user_idx, seconds)
        return self.predict(features).reshape(len(user_idx), len(store.post_ids))
