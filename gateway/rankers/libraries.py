"""The one mapping from a model's kind (its library) to the module that fits, loads and
compiles it; loading a model folder dispatches through it."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from gateway.config import ArmSettings
from gateway.rankers import catboost, lightgbm
from gateway.rankers.compiled import CompileReport, CompileUnavailable, TreeRanker, compile_ranker
from gateway.rankers.model_dir import MANIFEST, ModelError, check_model_file, read_manifest

LIBRARIES: dict[str, ModuleType] = {module.KIND: module for module in (lightgbm, catboost)}


def library(kind: str, where: object = "model") -> ModuleType:
    """The module of library ``kind``; ModelError naming ``where`` if there is none."""
    try:
        return LIBRARIES[kind]
    except KeyError:
        raise ModelError(
            f"{where}: unknown model kind {kind!r} (known: {', '.join(LIBRARIES)})"
        ) from None


def check_model_dir(model_dir: Path) -> dict:
    """The folder's manifest, checked (keys, features, library) without loading the model."""
    manifest = read_manifest(model_dir)
    library(manifest["kind"], Path(model_dir) / MANIFEST)
    return manifest


def load_ranker(model_dir: Path, feature_set_version: str | None = None, *, threads: int = 0) -> TreeRanker:
    """Load and validate a model folder; raise ModelError with a readable reason.

    ``threads`` per prediction: 0 uses all cores (batch jobs); the gateway uses 1 per request."""
    manifest = check_model_dir(model_dir)
    manifest["_path"] = str(model_dir)
    if feature_set_version and manifest["feature_set_version"] != feature_set_version:
        raise ModelError(
            f"{model_dir}: model built for feature set {manifest['feature_set_version']}, "
            f"store serves {feature_set_version}: retrain it"
        )
    module = library(manifest["kind"])
    model_file = Path(model_dir) / module.MODEL_FILE
    if not model_file.exists():
        raise ModelError(f"{model_dir}: model file {model_file.name} missing")
    check_model_file(model_file, manifest, module.PREFLIGHT)
    try:
        return module.load(model_file, manifest, threads)
    except ModelError:
        raise
    except Exception as exc:  # the libraries raise many types for a corrupt file
        raise ModelError(
            f"{model_file}: cannot load model ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc


def load_arm_rankers(
    arms: list[ArmSettings], feature_set_version: str | None = None, *, threads: int = 0
) -> dict[str, TreeRanker]:
    """Every arm's ranker, by arm name."""
    return {arm.name: load_ranker(arm.model, feature_set_version, threads=threads) for arm in arms}


def compile_model_dir(model_dir: Path) -> CompileReport:
    """Build (or find) a model folder's compiled forest and check it scores like its library."""
    ranker = load_ranker(model_dir)
    try:
        report = compile_ranker(ranker)
    except CompileUnavailable as exc:
        raise CompileUnavailable(
            f"{model_dir}: cannot be compiled ({exc}); it will be served by {ranker.library}"
        ) from None
    assert report is not None  # compile_if_missing: there is always a forest
    return report
