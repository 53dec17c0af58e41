"""Model folders: a model file plus manifest.json. Reading and writing the manifest, the model
file's SHA-256, and the child-process check of a file without one."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from gateway.features.definitions import FEATURE_NAMES
from gateway.fsutil import atomic_write

MANIFEST = "manifest.json"
PREFLIGHT_TIMEOUT_S = 60


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
    unknown = [f for f in manifest["features"] if f not in FEATURE_NAMES]
    if unknown:
        raise ModelError(f"{path}: features not in the feature store: {', '.join(unknown)}")
    return manifest


def write_manifest(model_dir: Path, manifest: dict) -> None:
    atomic_write(Path(model_dir) / MANIFEST, json.dumps(manifest, indent=1))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_model_file(model_file: Path, manifest: dict, preflight: str) -> None:
    """Refuse a model file before the library parses it: LightGBM segfaults, aborts or hangs
    on some truncated or corrupted files, which would take the whole gateway down.

    Files from ``recsys train`` carry their SHA-256 in the manifest; a file without one is
    parsed once in a child process (with a time limit) before this process touches it, by
    ``preflight``: the library's Python code that loads the file named by ``sys.argv[1]``."""
    expected = manifest.get("model_sha256")
    if expected:
        actual = file_sha256(model_file)
        if actual != expected:
            raise ModelError(
                f"{model_file}: corrupt or replaced model file (SHA-256 {actual[:12]}…, "
                f"the manifest expects {expected[:12]}…)"
            )
        return
    try:
        done = subprocess.run(
            [sys.executable, "-c", preflight, str(model_file)],
            capture_output=True,
            text=True,
            timeout=PREFLIGHT_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise ModelError(f"{model_file}: corrupt model file (loading it hung)") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1][:200]
        raise ModelError(f"{model_file}: corrupt model file (the loader failed: {last})")

