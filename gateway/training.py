"""``recsys train control|test``: fit a ranker on logged views from the offline store.

Rows are views (label = ``target``) sampled from the training window; the validation window
(the days before the held-out evaluation period) drives early stopping. Features come from
``FeatureStore.compute``, the same function serving calls.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from gateway.features.definitions import CATEGORICAL, FEATURE_SET_VERSION
from gateway.features.store import FeatureStore, feature_matrix
from gateway.progress import stderr
from gateway.rankers.model_dir import MANIFEST, MODEL_FILES, file_sha256
from gateway.ranking import roc_auc, session_hitrate

# Control is the classic model of the source course: demographics, post popularity, time,
# topic-level history and one simple text similarity.
CONTROL_FEATURES = (
    "gender",
    "age",
    "country",
    "exp_group",
    "os",
    "source",
    "hour",
    "weekday",
    "topic",
    "text_len",
    "post_views",
    "post_ctr",
    "u_views",
    "u_likes",
    "u_ctr",
    "u_today_views",
    "u_today_ctr",
    "u_topic_lift",
    "u_profile_sim",
)
# Test reads the same store and adds what the text reveals about each user's taste: the
# embedding itself, text clusters and the user's likes in them, the profile contrast; and city.
TEST_FEATURES = (
    *CONTROL_FEATURES,
    "city",
    "cluster",
    "u_profile_dot",
    "u_profile_contrast",
    "u_cluster_likes",
    "u_cluster_lift",
    *(f"svd_{k}" for k in range(16)),
)
ARMS = {"control": ("lightgbm", CONTROL_FEATURES), "test": ("catboost", TEST_FEATURES)}


@dataclass
class Split:
    train: tuple[int, int]  # epoch seconds [start, end)
    validation: tuple[int, int]
    evaluation: tuple[int, int]


def time_split(store: FeatureStore, validation_days: int, evaluation_days: int) -> Split:
    day0, days = store.manifest["day0"], store.manifest["days"]
    if days < validation_days + evaluation_days + 3:
        raise ValueError(
            f"the feed spans {days} days: too short for {validation_days}+{evaluation_days} held-out days"
        )
    eval_start = day0 + (days - evaluation_days) * 86400
    val_start = eval_start - validation_days * 86400
    return Split((day0, val_start), (val_start, eval_start), (eval_start, day0 + days * 86400))


def logged_views(
    store: FeatureStore, window: tuple[int, int], limit: int, seed: int
) -> dict[str, np.ndarray]:
    """A seeded uniform sample of the logged views in ``[start, end)``."""
    events = store.events
    mask = (~events["like"]) & (events["seconds"] >= window[0]) & (events["seconds"] < window[1])
    rows = np.flatnonzero(mask)
    if len(rows) > limit:
        rows = np.sort(np.random.default_rng(seed).choice(rows, limit, replace=False))
    return {k: events[k][rows] for k in ("user", "post", "seconds", "target")}


def features_for_views(
    store: FeatureStore, views: dict[str, np.ndarray], chunk: int = 400_000
) -> dict[str, np.ndarray]:
    parts = []
    for start in range(0, len(views["user"]), chunk):
        sl = slice(start, start + chunk)
        n = len(views["user"][sl])
        parts.append(store.compute(views["user"][sl], views["seconds"][sl], np.arange(n), views["post"][sl]))
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _version(arm: str, kind: str, path: Path) -> str:
    digest = hashlib.sha1(path.read_bytes()).hexdigest()[:8]
    return f"{arm}-{kind}-{datetime.now(UTC):%Y%m%d%H%M%S}-{digest}"


def train_arm(
    arm: str,
    store: FeatureStore,
    out_dir: Path,
    *,
    seed: int,
    max_rows: int,
    validation_days: int,
    evaluation_days: int,
    max_rounds: int | None = None,
) -> dict:
    """Train one arm and write model file + manifest.json atomically into ``out_dir``.

    ``max_rounds`` caps boosting rounds (tests use it for speed)."""
    kind, names = ARMS[arm]
    names = list(names)
    started = time.perf_counter()
    split = time_split(store, validation_days, evaluation_days)
    stderr.print(f"[bold]{arm}[/] ({kind}): sampling up to {max_rows:,} training views")
    train = logged_views(store, split.train, max_rows, seed)
    valid = logged_views(store, split.validation, max(50_000, max_rows // 4), seed + 1)
    x_train = feature_matrix(features_for_views(store, train), names)
    valid_features = features_for_views(store, valid)
    x_valid = feature_matrix(valid_features, names)
    y_train, y_valid = train["target"].astype(np.int32), valid["target"].astype(np.int32)
    categorical = [n for n in names if n in CATEGORICAL]
    stderr.print(f"{len(y_train):,} training rows, {len(y_valid):,} validation rows, {len(names)} features")
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / MODEL_FILES[kind]
    tmp_model = out_dir / f".{model_path.name}.tmp-{os.getpid()}"
    if kind == "lightgbm":
        import lightgbm as lgb

        params = {
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
            "seed": seed,
            "deterministic": True,
            "num_threads": os.cpu_count() or 2,
            "verbosity": -1,
        }
        dtrain = lgb.Dataset(x_train, y_train, feature_name=names, categorical_feature=categorical)
        dvalid = lgb.Dataset(x_valid, y_valid, reference=dtrain)
        booster = lgb.train(
            params,
            dtrain,
            num_boost_round=max_rounds or 600,
            valid_sets=[dvalid],
            valid_names=["validation"],
            callbacks=[lgb.early_stopping(40, verbose=False), lgb.log_evaluation(50)],
        )
        booster.save_model(str(tmp_model), num_iteration=booster.best_iteration)
        p_valid = booster.predict(x_valid, num_iteration=booster.best_iteration)
        params["num_boost_round"] = booster.best_iteration
    else:
        from catboost import CatBoostClassifier, Pool

        # Categorical codes go in as numbers (CatBoost splits on them like any float): native
        # categorical columns cost ~10 ms per request just to build CatBoost's Pool (string
        # hashing of 8 columns x 7,023 rows), more than the whole float-only prediction.
        categorical = []
        params = {
            "iterations": 450,
            "learning_rate": 0.12,
            "depth": 6,
            "l2_leaf_reg": 3.0,
            "loss_function": "Logloss",
            "eval_metric": "AUC",
            "random_seed": seed,
            "thread_count": os.cpu_count() or 2,
            "od_type": "Iter",
            "od_wait": 40,
            "verbose": 50,
            "allow_writing_files": False,
        }
        train_pool = Pool(x_train, y_train, feature_names=names)
        valid_pool = Pool(x_valid, y_valid, feature_names=names)
        if max_rounds:
            params["iterations"] = max_rounds
        model = CatBoostClassifier(**params)
        model.fit(train_pool, eval_set=valid_pool, use_best_model=True)
        model.save_model(str(tmp_model))
        p_valid = model.predict(valid_pool, prediction_type="Probability")[:, 1]
        params["best_iteration"] = int(model.get_best_iteration())
    tmp_model.replace(model_path)
    groups = valid["user"].astype(np.int64) * 1000 + (valid["seconds"] - store.manifest["day0"]) // 86400
    manifest = {
        "arm": arm,
        "kind": kind,
        "model_version": _version(arm, kind, model_path),
        "model_file": model_path.name,
        "model_sha256": file_sha256(model_path),
        "features": names,
        "categorical": categorical,
        "feature_set_version": FEATURE_SET_VERSION,
        "feature_store_version": store.version,
        "training_window": [_iso(split.train[0]), _iso(split.train[1])],
        "validation_window": [_iso(split.validation[0]), _iso(split.validation[1])],
        "evaluation_window": [_iso(split.evaluation[0]), _iso(split.evaluation[1])],
        "rows": {"train": int(len(y_train)), "validation": int(len(y_valid))},
        "sampling": f"uniform sample of at most {max_rows:,} logged views of the training window (seed {seed})",
        "params": params,
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
    tmp_manifest = out_dir / f".{MANIFEST}.tmp-{os.getpid()}"
    tmp_manifest.write_text(json.dumps(manifest, indent=1))
    tmp_manifest.replace(out_dir / MANIFEST)
    return manifest


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).replace(tzinfo=None).isoformat()
