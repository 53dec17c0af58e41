"""CatBoost (the test arm's library): default hyperparameters, fit, load, predict, and the
oblivious trees compiled to C (``gateway.rankers.oblivious``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from gateway.features.store import feature_columns, feature_matrix
from gateway.fsutil import atomic_path
from gateway.rankers import oblivious
from gateway.rankers.compiled import TreeRanker
from gateway.rankers.model_dir import ModelError
from gateway.rankers.protocol import Fit, TrainingData

KIND = "catboost"
MODEL_FILE = "model.cbm"
# Parses a model file in a child process (``model_dir.check_model_file``).
PREFLIGHT = "import sys, catboost; catboost.CatBoost().load_model(sys.argv[1])"
# Hyperparameters (config.yaml ``training.models.<arm>.params`` override them key by key);
# the seed, the thread count and logging are set at run time.
DEFAULT_PARAMS = {
    "iterations": 450,
    "learning_rate": 0.12,
    "depth": 6,
    "l2_leaf_reg": 3.0,
    "loss_function": "Logloss",
    "eval_metric": "AUC",
    "od_type": "Iter",
    "od_wait": 40,
}


def fit(data: TrainingData, params: dict, *, seed: int, max_rounds: int | None, model_path: Path) -> Fit:
    """Boost with overfitting detection on the validation rows; keep the best model.

    Categorical codes go in as numbers (CatBoost splits on them like any float): with native
    categorical columns every prediction would first build a Pool, hashing the categorical
    values of the whole catalogue, which costs more than the float-only prediction itself."""
    from catboost import CatBoostClassifier, Pool

    params = {
        **DEFAULT_PARAMS,
        **params,
        "random_seed": seed,
        "thread_count": os.cpu_count() or 2,
        "verbose": 50,
        "allow_writing_files": False,
    }
    if max_rounds:
        params["iterations"] = max_rounds
    train_pool = Pool(data.x_train, data.y_train, feature_names=data.names)
    valid_pool = Pool(data.x_valid, data.y_valid, feature_names=data.names)
    model = CatBoostClassifier(**params)
    model.fit(train_pool, eval_set=valid_pool, use_best_model=True)
    with atomic_path(model_path) as tmp:
        model.save_model(str(tmp))
    p_valid = model.predict(valid_pool, prediction_type="Probability")[:, 1]
    params["best_iteration"] = int(model.get_best_iteration())
    return Fit(p_valid, params, categorical=[])


def load(model_file: Path, manifest: dict, threads: int = 0) -> CatBoostRanker:
    from catboost import CatBoostClassifier

    model = CatBoostClassifier()
    model.load_model(str(model_file))
    if list(model.feature_names_) != list(manifest["features"]):
        raise ModelError(f"{model_file}: model features differ from the manifest's")
    return CatBoostRanker(model, manifest, threads)


def catboost_frame(features: dict[str, np.ndarray], names: list[str], categorical: list[str]) -> pd.DataFrame:
    """CatBoost wants integer codes for categorical columns."""
    return pd.DataFrame({n: features[n].astype(np.int64) if n in categorical else features[n] for n in names})


class CatBoostRanker(TreeRanker):
    library, compiled_as, model_file_name = KIND, "C, oblivious trees", MODEL_FILE

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

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """The library's own predict on a pandas frame (all cores): the naive service's way."""
        return self.model.predict_proba(frame)[:, 1]

    def compiled_input(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return feature_columns(features, self.features)

    @classmethod
    def compiled_key(cls) -> tuple[list[str], str, str]:
        return [oblivious.toolchain_id()], "", ".so"

    @classmethod
    def build_compiled(cls, model_file: Path, out: Path) -> None:
        oblivious.build_library(model_file, out)

    @classmethod
    def open_compiled(cls, model_file: Path, path: Path) -> oblivious.ObliviousForest:
        return oblivious.ObliviousForest(path)
