"""Tree models compiled to native code for serving, whatever their library.

A model ranker runs on its library's predictor until a compiled forest is attached; attaching
checks the forest's scores against the library's on a probe batch, so a ranker's scores never
change by more than ``MAX_ABS_DIFFERENCE`` when it is compiled. Each library says how its
forest is built and opened (``gateway.rankers.lightgbm``: lleaves; ``gateway.rankers.catboost``:
generated C, ``gateway.rankers.oblivious``).

Compiling takes long for a few hundred trees, so the compiled file is cached beside the model,
under a key of the model file's hash and the library's toolchain (compiler versions, CPU):
``recsys train`` and ``recsys compile`` write it; a server that finds no matching cache serves
with the library's predictor and compiles in the background. ``compile_ranker`` is the one
path that builds, verifies and attaches a forest.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.features.store import FeatureStore
from gateway.fsutil import atomic_path

COMPILED_DIR = "compiled"
MAX_ABS_DIFFERENCE = 1e-9
PROBE_ROWS = 2000


class CompileUnavailable(RuntimeError):
    """The model or this machine cannot use a compiled forest (toolchain missing or incompatible)."""


class CompiledMismatch(CompileUnavailable, ValueError):
    """A compiled forest does not score like its library."""


def max_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) if len(a) else 0.0


class TreeRanker:
    """A trained model over the shared features; a library module subclasses it with the
    library's predictor and how its forest is compiled."""

    library = ""
    compiled_as = ""
    model_file_name = ""

    def __init__(self, manifest: dict, threads: int = 0) -> None:
        self.manifest = manifest
        self.name = manifest["arm"]
        self.version = manifest["model_version"]
        self.features = list(manifest["features"])
        self.threads = threads  # 0: all cores (batch jobs); serving uses 1 per request
        self.compiled = None

    @property
    def model_file(self) -> Path:
        return Path(self.manifest["_path"]) / self.model_file_name

    @property
    def inference(self) -> str:
        return f"compiled ({self.compiled_as})" if self.compiled is not None else f"native ({self.library})"

    # -- what a library provides ------------------------------------------------------------
    def native_predict(self, features: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def compiled_input(self, features: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    @classmethod
    def compiled_key(cls) -> tuple[list[str], str, str]:
        """(toolchain parts hashed into the cache key, name tag, file suffix) on this machine."""
        raise NotImplementedError

    @classmethod
    def build_compiled(cls, model_file: Path, out: Path) -> None:
        raise NotImplementedError

    @classmethod
    def open_compiled(cls, model_file: Path, path: Path):
        raise NotImplementedError

    # -- scoring ----------------------------------------------------------------------------
    def predict(self, features: dict[str, np.ndarray]) -> np.ndarray:
        compiled = self.compiled  # one read: a concurrent attach cannot split a request
        if compiled is not None:
            return compiled.predict(self.compiled_input(features))
        return self.native_predict(features)

    def attach_compiled(self, compiled, probe: dict[str, np.ndarray]) -> float:
        """Serve with ``compiled`` from now on if it scores the probe like the library."""
        diff = max_difference(compiled.predict(self.compiled_input(probe)), self.native_predict(probe))
        if not diff <= MAX_ABS_DIFFERENCE:
            raise CompiledMismatch(f"compiled model differs from {self.library} by {diff:.3g} on the probe")
        self.compiled = compiled
        return diff

    def score(self, store: FeatureStore, user_idx, seconds, features=None) -> np.ndarray:
        features = features if features is not None else store.compute(user_idx, seconds)
        return self.predict(features).reshape(len(user_idx), len(store.post_ids))


def cache_path(ranker: TreeRanker) -> Path:
    """Where the compiled file for this model, this CPU and this toolchain lives."""
    model_file = ranker.model_file
    parts, tag, suffix = ranker.compiled_key()
    key = hashlib.sha256()
    key.update(model_file.read_bytes())
    for part in parts:
        key.update(str(part).encode())
    return model_file.parent / COMPILED_DIR / f"{model_file.stem}{tag}-{key.hexdigest()[:16]}{suffix}"


def load_compiled(ranker: TreeRanker, *, compile_if_missing: bool):
    """The cached compiled forest; compiled now (slow) if missing and allowed, else None."""
    model_file = ranker.model_file
    path = cache_path(ranker)
    if not path.exists():
        if not compile_if_missing:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:  # a concurrent loader sees the whole file or none
            ranker.build_compiled(model_file, tmp)
        for stale in path.parent.glob(f"{model_file.stem}-*{path.suffix}"):
            if stale != path:
                stale.unlink(missing_ok=True)
    return ranker.open_compiled(model_file, path)


def random_probe(features: list[str], rows: int = PROBE_ROWS) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {name: rng.normal(size=rows).astype(np.float32) for name in features}


@dataclass(frozen=True)
class CompileReport:
    library: str
    path: Path
    max_difference: float
    seconds: float


def compile_ranker(
    ranker: TreeRanker, probe: dict[str, np.ndarray] | None = None, *, compile_if_missing: bool = True
) -> CompileReport | None:
    """Give ``ranker`` its compiled forest (cached, or built now if allowed), verified on
    ``probe`` (else ``PROBE_ROWS`` random rows) against the library: None when there is no
    forest yet; CompileUnavailable when the toolchain cannot build one or it scores differently."""
    started = time.perf_counter()
    forest = load_compiled(ranker, compile_if_missing=compile_if_missing)
    if forest is None:
        return None
    diff = ranker.attach_compiled(forest, random_probe(ranker.features) if probe is None else probe)
    return CompileReport(ranker.library, forest.path, diff, time.perf_counter() - started)
