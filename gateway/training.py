"""``recsys train control|test``: fit an arm's ranker on logged views from the feature store.

Rows are views (label = ``target``) sampled from the training window; the validation window
(the days before the held-out evaluation period) drives early stopping. Features come from
``FeatureStore.compute``, the same function serving calls. The arm's library, feature set and
hyperparameters come from config.yaml ``training.models``.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from gateway.config import ModelSettings, Settings
from gateway.features.dataset import features_for_views, logged_views, time_split
from gateway.features.definitions import CATEGORICAL, FEATURE_SET_VERSION, FEATURE_SETS
from gateway.features.store import FeatureStore, feature_matrix
from gateway.progress import stderr
from gateway.rankers.libraries import library
from gateway.rankers.model_dir import ModelError, file_sha256, write_manifest
from gateway.rankers.protocol import TrainingData
from gateway.ranking import roc_auc, session_hitrate


def _version(arm: str, kind: str, path: Path) -> str:
    digest = hashlib.sha1(path.read_bytes()).hexdigest()[:8]
    return f"{arm}-{kind}-{datetime.now(UTC):%Y%m%d%H%M%S}-{digest}"


_ROWS: dict[tuple, tuple] = {}  # the last training rows and their features (one entry)


def training_rows(store: FeatureStore, split, max_rows: int, seed: int) -> tuple[dict, dict, dict, dict]:
    """The sampled training and validation views and their features. Every arm reads the one
    store, so arms trained in one process (``recsys demo``) on the same sample compute the
    features once: the last sample is kept, keyed by the store and the sampling."""
    key = (id(store), store.version, split.train, split.validation, max_rows, seed)
    if key not in _ROWS:
        _ROWS.clear()  # one entry: the memory of one sample's features
        train = logged_views(store, split.train, max_rows, seed)
        valid = logged_views(store, split.validation, max(50_000, max_rows // 4), seed + 1)
        # The entry holds the store itself, so that its id is not reused by another store.
        _ROWS[key] = (store, train, valid, features_for_views(store, train), features_for_views(store, valid))
    return _ROWS[key][1:]


def train_arm(
    arm: str,
    store: FeatureStore,
    out_dir: Path,
    *,
    model: ModelSettings,
    seed: int,
    max_rows: int,
    validation_days: int,
    evaluation_days: int,
    max_rounds: int | None = None,
) -> dict:
    """Train one arm and write model file + manifest.json atomically into ``out_dir``.

    ``max_rounds`` caps boosting rounds (tests use it for speed)."""
    kind = model.library
    module = library(kind, f"training.models.{arm}.library")
    if model.feature_set not in FEATURE_SETS:
        raise ModelError(
            f"training.models.{arm}.feature_set: unknown feature set {model.feature_set!r} "
            f"(known: {', '.join(FEATURE_SETS)})"
        )
    names = list(FEATURE_SETS[model.feature_set])
    started = time.perf_counter()
    split = time_split(store, validation_days, evaluation_days)
    stderr.print(f"[bold]{arm}[/] ({kind}): sampling up to {max_rows:,} training views")
    train, valid, train_features, valid_features = training_rows(store, split, max_rows, seed)
    x_train = feature_matrix(train_features, names)
    x_valid = feature_matrix(valid_features, names)
    y_train, y_valid = train["target"].astype(np.int32), valid["target"].astype(np.int32)
    stderr.print(f"{len(y_train):,} training rows, {len(y_valid):,} validation rows, {len(names)} features")
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / module.MODEL_FILE
    data = TrainingData(x_train, y_train, x_valid, y_valid, names, [n for n in names if n in CATEGORICAL])
    fit = module.fit(data, model.params, seed=seed, max_rounds=max_rounds, model_path=model_path)
    p_valid = fit.p_valid
    groups = valid["user"].astype(np.int64) * 1000 + (valid["seconds"] - store.manifest["day0"]) // 86400
    manifest = {
        "arm": arm,
        "kind": kind,
        "model_version": _version(arm, kind, model_path),
        "model_file": model_path.name,
        "model_sha256": file_sha256(model_path),
        "features": names,
        "categorical": fit.categorical,
        "feature_set_version": FEATURE_SET_VERSION,
        "feature_store_version": store.version,
        "training_window": [_iso(split.train[0]), _iso(split.train[1])],
        "validation_window": [_iso(split.validation[0]), _iso(split.validation[1])],
        "evaluation_window": [_iso(split.evaluation[0]), _iso(split.evaluation[1])],
        "rows": {"train": int(len(y_train)), "validation": int(len(y_valid))},
        "sampling": f"uniform sample of at most {max_rows:,} logged views of the training window (seed {seed})",
        "params": fit.params,
        "seed": seed,
        "metrics": {
            "validation_auc": round(roc_auc(y_valid, p_valid), 5),
            "validation_hitrate@5_logged": round(session_hitrate(groups, p_valid, y_valid), 5),
            "validation_hitrate@5_logged_random": round(
                session_hitrate(groups, np.random.default_rng(seed).random(len(y_valid)), y_valid), 5
            ),
        },
        "training_seconds": round(time.perf_counter() - started, 1),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_manifest(out_dir, manifest)
    return manifest


def train_configured_arm(
    settings: Settings,
    arm: str,
    store: FeatureStore,
    out: Path | None = None,
    *,
    seed: int | None = None,
    max_rows: int | None = None,
) -> tuple[dict, Path]:
    """Train ``arm`` as config.yaml says, into ``out`` (else the arm's model folder); return its
    manifest and folder."""
    if arm not in settings.training.models:
        raise ModelError(
            f"no training.models.{arm} in the configuration (arms: {', '.join(settings.training.models)})"
        )
    out = out or next((a.model for a in settings.experiment.arms if a.name == arm), Path("models") / arm)
    manifest = train_arm(
        arm,
        store,
        out,
        model=settings.training.models[arm],
        seed=settings.training.seed if seed is None else seed,
        max_rows=max_rows or settings.training.max_train_rows,
        validation_days=settings.training.validation_days,
        evaluation_days=settings.training.evaluation_days,
    )
    return manifest, out


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).replace(tzinfo=None).isoformat()
