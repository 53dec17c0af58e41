"""The feature store's files: one name each, the ``CURRENT`` pointer and the manifest."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.fsutil import atomic_write

CURRENT = "CURRENT"  # in the features folder: the name of the version to serve
MANIFEST = "manifest.json"
USERS = "users.parquet"
POSTS = "posts.parquet"
POST_TEXTS = "post_texts.parquet"
EVENTS = "events.npz"
POST_DAILY = "post_daily.npz"
TEXT_SPACE = "text_space.npz"
TASTE = "taste.npz"  # the users × taste clusters factor model (features/taste.py)
ARTIFACTS = (MANIFEST, USERS, POSTS, POST_TEXTS, EVENTS, POST_DAILY, TEXT_SPACE, TASTE)


class FeatureStoreError(RuntimeError):
    pass


def current_store_dir(features_dir: Path) -> Path:
    """The folder ``CURRENT`` points to, checked complete."""
    pointer = features_dir / CURRENT
    if not pointer.exists():
        raise FeatureStoreError(f"no feature store in {features_dir}: run `recsys features build` first")
    path = features_dir / pointer.read_text().strip()
    missing = [name for name in ARTIFACTS if not (path / name).exists()]
    if missing:
        raise FeatureStoreError(
            f"feature store {path} is incomplete (missing {', '.join(missing)}): run `recsys features build` again"
        )
    return path


def point_current(features_dir: Path, version: str) -> None:
    atomic_write(features_dir / CURRENT, version)


def read_manifest(store_dir: Path) -> dict:
    return json.loads((store_dir / MANIFEST).read_text())
