"""Model rankers: LightGBM (control) and CatBoost (test) over the shared feature store."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gateway.features.online import FeatureStore, feature_matrix


def catboost_frame(features: dict[str, np.ndarray], names: list[str], categorical: list[str]) -> pd.DataFrame:
    """CatBoost wants integer codes for categorical columns."""
    return pd.DataFrame({n: features[n].astype(np.int64) if n in categorical else features[n] for n in names})


class LightGBMRanker:
    def __init__(self, booster, manifest: dict) -> None:
        self.booster = booster
        self.manifest = manifest
        self.name = manifest["arm"]
        self.version = manifest["model_version"]
        self.features = list(manifest["features"])

    def predict(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return self.booster.predict(
            feature_matrix(features, self.features), num_threads=self.manifest.get("predict_threads", 0)
        )

    def score(self, store: FeatureStore, user_idx, seconds, features=None) -> np.ndarray:
        features = features if features is not None else store.compute(user_idx, seconds)
        return self.predict(features).reshape(len(user_idx), len(store.post_ids))


class CatBoostRanker:
    def __init__(self, model, manifest: dict) -> None:
        self.model = model
        self.manifest = manifest
        self.name = manifest["arm"]
        self.version = manifest["model_version"]
        self.features = list(manifest["features"])
        self.categorical = [f for f in self.features if f in set(manifest["categorical"])]

    def predict(self, features: dict[str, np.ndarray]) -> np.ndarray:
        frame = catboost_frame(features, self.features, self.categorical)
        return self.model.predict(
            frame, prediction_type="Probability", thread_count=self.manifest.get("predict_threads", -1) or -1
        )[:, 1]

    def score(self, store: FeatureStore, user_idx, seconds, features=None) -> np.ndarray:
        features = features if features is not None else store.compute(user_idx, seconds)
        return self.predict(features).reshape(len(user_idx), len(store.post_ids))
