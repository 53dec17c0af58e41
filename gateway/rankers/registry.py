"""Model folders: a model file plus manifest.json, validated fully before use."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.features.definitions import FEATURE_NAMES

MANIFEST = "manifest.json"
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


def load_ranker(model_dir: Path, feature_set_version: str | None = None, *, threads: int = 0):
    """Load and validate a model folder; raise ModelError with a readable reason.

    ``threads`` per prediction: 0 uses all cores (batch jobs); the gateway uses 1 per request."""
    from gateway.rankers.models import CatBoostRanker, LightGBMRanker

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
    try:
        if manifest["kind"] == "lightgbm":
            import lightgbm as lgb

            booster = lgb.Booster(model_file=str(model_file))
            if booster.num_feature() != len(manifest["features"]):
                raise ModelError(
                    f"{model_file}: model has {booster.num_feature()} features, manifest lists {len(manifest['features'])}"
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
