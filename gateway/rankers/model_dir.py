"""Model folders: a model file plus manifest.json, validated fully before use."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from gateway.features.definitions import FEATURE_NAMES

MANIFEST = "manifest.json"
PREFLIGHT_TIMEOUT_S = 60
MODEL_FILES = {"lightgbm": "model.txt", "catboost": "model.cbm"}


class ModelError(RuntimeError):
    """A model folder is missing, corrupt or does not match the feature store."""


def read_manifest(model_dir: Path) -> dict:
    path = Path(model_dir) / MANIFEST
    if not path.exists():
        raise ModelError(
            f"no trained model in {model_dir} (missing {MANIFEST}): run `recsys train control` / `recsys train test` first"
        )
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: unreadable manifest ({exc})") from exc
    for key in ("kind", "arm", "model_version", "features", "feature_set_version", "categorical"):
        if key not in manifest:
            raise ModelError(f"{path}: manifest lacks {key!r}")
    if manifest["kind"] not in MODEL_FILES:
        raise ModelError(f"{path}: unknown model kind {manifest['kind']!r}")
    unknown = [f for f in manifest["features"] if f not in FEATURE_NAMES]
    if unknown:
        raise ModelError(f"{path}: features not in the feature store: {', '.join(unknown)}")
    return manifest


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_model_file(model_file: Path, manifest: dict) -> None:
    """Refuse a model file before the library parses it: LightGBM segfaults, aborts or hangs
    on some truncated or corrupted files, which would take the whole gateway down.

    Files from ``recsys train`` carry their SHA-256 in the manifest; a file without one is
    parsed once in a child process (with a time limit) before this process touches it."""
    expected = manifest.get("model_sha256")
    if expected:
        actual = file_sha256(model_file)
        if actual != expected:
            raise ModelError(
                f"{model_file}: corrupt or replaced model file (SHA-256 {actual[:12]}…, "
                f"the manifest expects {expected[:12]}…)"
            )
        return
    code = (
        "import sys\n"
        "if sys.argv[1] == 'lightgbm':\n"
        "    import lightgbm; lightgbm.Booster(model_file=sys.argv[2])\n"
        "else:\n"
        "    import catboost; catboost.CatBoost().load_model(sys.argv[2])\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, manifest["kind"], str(model_file)],
            capture_output=True,
            text=True,
            timeout=PREFLIGHT_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise ModelError(f"{model_file}: corrupt model file (loading it hung)") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1][:200]
        raise ModelError(f"{model_file}: corrupt model file (the loader failed: {last})")


def load_ranker(model_dir: Path, feature_set_version: str | None = None, *, threads: int = 0):
    """Load and validate a model folder; raise ModelError with a readable reason.

    ``threads`` per prediction: 0 uses all cores (batch jobs); the gateway uses 1 per request."""
    from gateway.rankers.lightgbm import CatBoostRanker, LightGBMRanker

    manifest = read_manifest(model_dir)
    manifest["_path"] = str(model_dir)
    if feature_set_version and manifest["feature_set_version"] != feature_set_version:
        raise ModelError(
            f"{model_dir}: model built for feature set {manifest['feature_set_version']}, "
            f"store serves {feature_set_version}: retrain it"
        )
    model_file = Path(model_dir) / MODEL_FILES[manifest["kind"]]
    if not model_file.exists():
        raise ModelError(f"{model_dir}: model file {model_file.name} missing")
    check_model_file(model_file, manifest)
    try:
        if manifest["kind"] == "lightgbm":
            import lightgbm as lgb

            booster = lgb.Booster(model_file=str(model_file))
            if booster.feature_name() != list(manifest["features"]):
                raise ModelError(
                    f"{model_file}: the model's {booster.num_feature()} features differ from the "
                    f"manifest's {len(manifest['features'])} (names or order): retrain or fix the manifest"
                )
            return LightGBMRanker(booster, manifest, threads)
        from catboost import CatBoostClassifier

        model = CatBoostClassifier()
        model.load_model(str(model_file))
        if list(model.feature_names_) != list(manifest["features"]):
            raise ModelError(f"{model_file}: model features differ from the manifest's")
        return CatBoostRanker(model, manifest, threads)
    except ModelError:
        raise
    except Exception as exc:  # the libraries raise many types for a corrupt file
        raise ModelError(
            f"{model_file}: cannot load model ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
