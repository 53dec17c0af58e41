"""Model rankers: LightGBM (control) and CatBoost (test) over the shared feature store.

Each runs on its library's predictor until a compiled forest is attached (see
``gateway.rankers.compiled``); attaching checks the compiled scores against the library's on
a probe batch, so a ranker's scores never change by more than 1e-9 when it is compiled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gateway.features.store import FeatureStore, feature_columns, feature_matrix
from gateway.rankers.compiled import MAX_ABS_DIFFERENCE, max_difference
from gateway.rankers.model_dir import MODEL_FILES


def catboost_frame(features: dict[str, np.ndarray], names: list[str], categorical: list[str]) -> pd.DataFrame:
    """CatBoost wants integer codes for categorical columns."""
    return pd.DataFrame({n: features[n].astype(np.int64) if n in categorical else features[n] for n in names})


class TreeRanker:
    library = ""
    compiled_as = ""

    def __init__(self, manifest: dict, threads: int = 0) -> None:
        self.manifest = manifest
        self.name = manifest["arm"]
        self.version = manifest["model_version"]
        self.features = list(manifest["features"])
        self.threads = threads  # 0: all cores (batch jobs); serving uses 1 per request
        self.compiled = None

    @property
    def model_file(self) -> Path:
        return Path(self.manifest["_path"]) / MODEL_FILES[self.manifest["kind"]]

    @property
    def inference(self) -> str:
        return f"compiled ({self.compiled_as})" if self.compiled is not None else f"native ({self.library})"

    def native_predict(self, features: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def compiled_input(self, features: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def predict(self, features: dict[str, np.ndarray]) -> np.ndarray:
        compiled = self.compiled  # one read: a concurrent attach cannot split a request
        if compiled is not None:
            return compiled.predict(self.compiled_input(features))
        return self.native_predict(features)

    def attach_compiled(self, compiled, probe: dict[str, np.ndarray]) -> float:
        """Serve with ``compiled`` from now on if it scores the probe like the library."""
        diff = max_difference(compiled.predict(self.compiled_input(probe)), self.native_predict(probe))
        if not diff <= MAX_ABS_DIFFERENCE:
            raise ValueError(f"compiled model differs from {self.library} by {diff:.3g} on the probe")
        self.compiled = compiled
        return diff

    def score(self, store: FeatureStore, user_idx, seconds, features=None) -> np.ndarray:
        features = features if features is not None else store.compute(user_idx, seconds)
        return self.predict(features).reshape(len(user_idx), len(store.post_ids))


class LightGBMRanker(TreeRanker):
    library, compiled_as = "lightgbm", "lleaves"

    def __init__(self, booster, manifest: dict, threads: int = 0) -> None:
        super().__init__(manifest, threads)
        self.booster = booster

    def native_predict(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return self.booster.predict(feature_matrix(features, self.features), num_threads=self.threads)

    def compiled_input(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return feature_matrix(features, self.features)


class CatBoostRanker(TreeRanker):
    library, compiled_as = "catboost", "C, oblivious trees"

    def __init__(self, model, manifest: dict, threads: int = 0) -> None:
        super().__init__(manifest, threads)
        self.model = model
        self.categorical = [f for f in self.features if f in set(manifest["categorical"])]

    def native_predict(self, features: dict[str, np.ndarray]) -> np.ndarray:
        # Models with native categorical columns need a DataFrame (slow: CatBoost hashes every
        # categorical value); numeric-only models take the float32 matrix directly.
        data = (
            catboost_frame(features, self.features, self.categorical)
            if self.categorical
            else feature_matrix(features, self.features)
        )
        return self.model.predict(data, prediction_type="Probability", thread_count=self.threads or -1)[:, 1]

    def compiled_input(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return feature_columns(features, self.features)
