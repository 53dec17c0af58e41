"""The feature store's files: one name each, the ``CURRENT`` pointer and the manifest."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from gateway.fsutil import atomic_write

CURRENT = "CURRENT"  # in the features folder: the name of the version to serve
MANIFEST = "manifest.json"
USERS = "users.parquet"
POSTS = "posts.parquet"
POST_TEXTS = "post_texts.parquet"
EVENTS = "events.npz"
POST_TEXT_BYTES = "post_text_bytes.npy"  # every text's UTF-8, in post-index order (optional)
POST_TEXT_OFFSETS = "post_text_offsets.npy"  # where each text starts in it, and the end
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


def load_npz_mapped(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``np.savez`` file, each memory-mapped in place (read-only) when it is
    stored uncompressed, as ``np.savez`` writes them; loaded otherwise. A serving process then
    reads only the pages it touches, and the page cache is shared by its workers."""
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            if info.compress_type != zipfile.ZIP_STORED:
                with archive.open(info) as member:
                    out[name] = np.lib.format.read_array(member, allow_pickle=False)
                continue
            raw.seek(info.header_offset)
            local = raw.read(30)  # the member's local header: its name and extra field follow
            if local[:4] != b"PK\x03\x04":
                raise ValueError(f"{path}: damaged archive member {info.filename}")
            start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(
                local[28:30], "little"
            )
            raw.seek(start)
            version = np.lib.format.read_magic(raw)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(raw)
            if dtype.hasobject:
                raise ValueError(f"{path}: {info.filename} holds Python objects")
            if int(np.prod(shape)) == 0:
                out[name] = np.zeros(shape, dtype)
                continue
            out[name] = np.memmap(
                path, dtype=dtype, mode="r", offset=raw.tell(), shape=shape, order="F" if fortran else "C"
            )
    return out


def release_pages(array: np.ndarray) -> None:
    """Unmap the pages of a memory-mapped array this process has read (a start-up pass over a
    whole table): they stay in the page cache, shared, and are read again when touched."""
    while array is not None and not isinstance(array, np.memmap):
        array = array.base if isinstance(array, np.ndarray) else None
    mapping = getattr(array, "_mmap", None)
    if mapping is not None and hasattr(mapping, "madvise"):
        import mmap

        mapping.madvise(mmap.MADV_DONTNEED)
