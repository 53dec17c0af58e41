"""LightGBM (the control arm's library): default hyperparameters, fit, load, predict, and the
forest compiled to native code with lleaves (LLVM).

The compiled forest (one branch-specialised function per tree, blocked for the instruction
cache) is much faster than LightGBM's own predictor, which walks node arrays, and releases the
GIL while it runs. Scores are LightGBM's to within 1e-12 (both sum the same leaf values in
double); ``tests/rankers/test_compiled.py`` checks it on whole catalogues.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from gateway.features.store import feature_matrix
from gateway.fsutil import atomic_path
from gateway.rankers.compiled import CompileUnavailable, TreeRanker
from gateway.rankers.model_dir import ModelError
from gateway.rankers.protocol import Fit, TrainingData

KIND = "lightgbm"
MODEL_FILE = "model.txt"
# Parses a model file in a child process (``model_dir.check_model_file``).
PREFLIGHT = "import sys, lightgbm; lightgbm.Booster(model_file=sys.argv[1])"
# Hyperparameters (config.yaml ``training.models.<arm>.params`` override them key by key);
# the seed, the thread count and determinism are set at run time.
DEFAULT_PARAMS = {
    "objective": "binary",
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_data_in_leaf": 200,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "max_cat_to_onehot": 8,
    "metric": "auc",
    "num_boost_round": 600,
    "early_stopping_rounds": 40,
}


def fit(data: TrainingData, params: dict, *, seed: int, max_rounds: int | None, model_path: Path) -> Fit:
    """Boost with early stopping on the validation rows; write the best iteration to ``model_path``."""
    import lightgbm as lgb

    params = {**DEFAULT_PARAMS, **params}
    rounds = params.pop("num_boost_round")
    early_stopping = params.pop("early_stopping_rounds")
    params.update(seed=seed, deterministic=True, num_threads=os.cpu_count() or 2, verbosity=-1)
    dtrain = lgb.Dataset(
        data.x_train, data.y_train, feature_name=data.names, categorical_feature=data.categorical
    )
    dvalid = lgb.Dataset(data.x_valid, data.y_valid, reference=dtrain)
    booster = lgb.train(
        params,
        dtrain,
        num_boost_round=max_rounds or rounds,
        valid_sets=[dvalid],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(early_stopping, verbose=False), lgb.log_evaluation(50)],
    )
    with atomic_path(model_path) as tmp:
        booster.save_model(str(tmp), num_iteration=booster.best_iteration)
    p_valid = booster.predict(data.x_valid, num_iteration=booster.best_iteration)
    params["num_boost_round"] = booster.best_iteration
    return Fit(p_valid, params, data.categorical)


def load(model_file: Path, manifest: dict, threads: int = 0) -> LightGBMRanker:
    import lightgbm as lgb

    booster = lgb.Booster(model_file=str(model_file))
    if booster.feature_name() != list(manifest["features"]):
        raise ModelError(
            f"{model_file}: the model's {booster.num_feature()} features differ from the "
            f"manifest's {len(manifest['features'])} (names or order): retrain or fix the manifest"
        )
    return LightGBMRanker(booster, manifest, threads)


class LightGBMRanker(TreeRanker):
    library, compiled_as, model_file_name = KIND, "lleaves", MODEL_FILE

    def __init__(self, booster, manifest: dict, threads: int = 0) -> None:
        super().__init__(manifest, threads)
        self.booster = booster

    def native_predict(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return self.booster.predict(feature_matrix(features, self.features), num_threads=self.threads)

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """The library's own predict on a pandas frame (all cores): the naive service's way."""
        return self.booster.predict(frame)

    def compiled_input(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return feature_matrix(features, self.features)

    @classmethod
    def compiled_key(cls) -> tuple[list[str], str, str]:
        lleaves, llvmlite_version, cpu, cpu_features = _toolchain()
        return [getattr(lleaves, "__version__", "?"), llvmlite_version, cpu, cpu_features], f"-{cpu}", ".o"

    @classmethod
    def build_compiled(cls, model_file: Path, out: Path) -> None:
        _toolchain()[0].Model(model_file=str(model_file)).compile(cache=str(out))

    @classmethod
    def open_compiled(cls, model_file: Path, path: Path) -> CompiledForest:
        model = _toolchain()[0].Model(model_file=str(model_file))
        model.compile(cache=str(path))  # the cache exists: this loads it
        return CompiledForest(model, path)


class CompiledForest:
    """A compiled LightGBM model; ``predict`` takes the float32 feature matrix, one thread."""

    def __init__(self, model, path: Path) -> None:
        self._model = model
        self.path = path

    def predict(self, matrix: np.ndarray, threads: int = 1) -> np.ndarray:
        return self._model.predict(np.asarray(matrix, dtype=np.float64), n_jobs=max(threads, 1))


def _toolchain() -> tuple:
    try:
        import lleaves
        import llvmlite
        import llvmlite.binding as llvm
    except ImportError as exc:  # pragma: no cover - both are dependencies
        raise CompileUnavailable(f"lleaves is not installed ({exc})") from exc
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return lleaves, llvmlite.__version__, llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()
