"""Tree models compiled to native code for serving: LightGBM with lleaves (LLVM), CatBoost's
oblivious trees with generated C (``gateway.rankers.oblivious``).

LightGBM's own predictor walks node arrays and spends ~40 ms of one core on 7,023 rows x
200 trees of 63 leaves; the compiled forest (one branch-specialised function per tree, blocked
for the instruction cache) does the same rows in ~6 ms and releases the GIL while it runs.
Scores are LightGBM's to within 1e-12 (both sum the same leaf values in double); every load
checks that on a probe batch, and ``tests/test_compiled.py`` checks it on whole worlds.

Compiling takes tens of seconds for a few hundred trees, so the object file is cached beside
the model, under a key of the model file's hash, the CPU it was built for and the compiler
versions: `recsys train control` and `recsys compile` write it; a server that finds no
matching cache serves with LightGBM's predictor and compiles in the background.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

COMPILED_DIR = "compiled"
MAX_ABS_DIFFERENCE = 1e-9


class CompileUnavailable(RuntimeError):
    """The model or this machine cannot use a compiled forest (toolchain missing or incompatible)."""


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


def _is_catboost(model_file: Path) -> bool:
    return Path(model_file).suffix == ".cbm"


def cache_path(model_file: Path) -> Path:
    """Where the compiled file for this model, this CPU and this toolchain lives."""
    model_file = Path(model_file)
    key = hashlib.sha256()
    key.update(model_file.read_bytes())
    if _is_catboost(model_file):
        from gateway.rankers.oblivious import toolchain_id

        key.update(toolchain_id().encode())
        return model_file.parent / COMPILED_DIR / f"{model_file.stem}-{key.hexdigest()[:16]}.so"
    lleaves, llvmlite_version, cpu, features = _toolchain()
    for part in (getattr(lleaves, "__version__", "?"), llvmlite_version, cpu, features):
        key.update(str(part).encode())
    return model_file.parent / COMPILED_DIR / f"{model_file.stem}-{cpu}-{key.hexdigest()[:16]}.o"


class CompiledForest:
    """A compiled LightGBM model; ``predict`` takes the float32 feature matrix, one thread."""

    def __init__(self, model, path: Path) -> None:
        self._model = model
        self.path = path

    def predict(self, matrix: np.ndarray, threads: int = 1) -> np.ndarray:
        return self._model.predict(np.asarray(matrix, dtype=np.float64), n_jobs=max(threads, 1))


def load_compiled(model_file: Path, *, compile_if_missing: bool):
    """The cached compiled forest; compiled now (slow) if missing and allowed, else None."""
    model_file = Path(model_file)
    path = cache_path(model_file)
    if not path.exists():
        if not compile_if_missing:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        _build(model_file, tmp)
        tmp.replace(path)  # atomic: a concurrent loader sees the whole file or none
        for stale in path.parent.glob(f"{model_file.stem}-*{path.suffix}"):
            if stale != path:
                stale.unlink(missing_ok=True)
    return _open(model_file, path)


def _build(model_file: Path, out: Path) -> None:
    if _is_catboost(model_file):
        from gateway.rankers.oblivious import build_library

        build_library(model_file, out)
    else:
        _toolchain()[0].Model(model_file=str(model_file)).compile(cache=str(out))


def _open(model_file: Path, path: Path):
    if _is_catboost(model_file):
        from gateway.rankers.oblivious import ObliviousForest

        return ObliviousForest(path)
    model = _toolchain()[0].Model(model_file=str(model_file))
    model.compile(cache=str(path))  # the cache exists: this loads it
    return CompiledForest(model, path)


def max_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) if len(a) else 0.0
