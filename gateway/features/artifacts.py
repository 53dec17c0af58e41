"""The feature store's files: one name each, the ``CURRENT`` pointer and the manifest."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import BinaryIO, Protocol

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
POST_TFIDF_BOUNDS = "post_tfidf_bounds.npy"  # the posts' TF-IDF by word (CSC): column bounds (optional)
POST_TFIDF_ROWS = "post_tfidf_rows.npy"  # the posts that use each word, column after column
POST_TFIDF_VALUES = "post_tfidf_values.npy"  # and the word's weight in each of them
POST_TFIDF = (POST_TFIDF_BOUNDS, POST_TFIDF_ROWS, POST_TFIDF_VALUES)
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
            shape, fortran, dtype = _read_npy_header(raw, f"{path}: {info.filename}")
            if int(np.prod(shape)) == 0:
                out[name] = np.zeros(shape, dtype)
                continue
            out[name] = np.memmap(
                path, dtype=dtype, mode="r", offset=raw.tell(), shape=shape, order="F" if fortran else "C"
            )
    return out


def _read_npy_header(raw: BinaryIO, name: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype of the ``.npy`` array at ``raw``'s position, which is left
    at the array's first byte."""
    version = np.lib.format.read_magic(raw)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(raw)
    if dtype.hasobject:
        raise ValueError(f"{name} holds Python objects")
    return shape, fortran, dtype


class Ranges(Protocol):
    """A 1-D array read by ranges: ``read(lo, hi)`` is ``array[lo:hi]``."""

    dtype: np.dtype

    def __len__(self) -> int: ...

    def read(self, lo: int, hi: int) -> np.ndarray: ...


class InMemory:
    """``Ranges`` over an array in memory."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = np.asarray(array)
        self.dtype = self.array.dtype

    def __len__(self) -> int:
        return len(self.array)

    def read(self, lo: int, hi: int) -> np.ndarray:
        return self.array[lo:hi]


class NpyRanges:
    """``Ranges`` over a 1-D ``.npy`` file, each range read with ``os.pread`` on a descriptor kept
    open: the bytes come from the page cache (shared by the workers) without being mapped, so a
    read adds nothing to the process's resident size. A memory-mapped read would map the whole
    page-cache folio around it (up to 2 MB on this machine's kernel), and random reads of a few
    bytes would leave most of the file resident."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - held for the object's life
        try:
            shape, _, dtype = _read_npy_header(self._file, str(path))
        except BaseException:
            self._file.close()
            raise
        if len(shape) != 1:
            self._file.close()
            raise FeatureStoreError(f"{path}: expected a 1-D array, found shape {shape}")
        self.dtype = dtype
        self._length = int(shape[0])
        self._start = self._file.tell()
        self._fd = self._file.fileno()

    def __len__(self) -> int:
        return self._length

    def read(self, lo: int, hi: int) -> np.ndarray:
        size = self.dtype.itemsize
        lo, hi = max(0, lo), min(hi, self._length)
        if hi <= lo:
            return np.empty(0, self.dtype)
        want, at, parts = (hi - lo) * size, self._start + lo * size, []
        while want:  # a single read stops short of 2 GB
            part = os.pread(self._fd, want, at)
            if not part:
                raise FeatureStoreError(f"{self._file.name}: file shorter than its header says")
            parts.append(part)
            want, at = want - len(part), at + len(part)
        return np.frombuffer(parts[0] if len(parts) == 1 else b"".join(parts), self.dtype)


def release_pages(array: np.ndarray) -> None:
    """Unmap the pages of a memory-mapped array this process has read (a start-up pass over a
    whole table): they stay in the page cache, shared, and are read again when touched."""
    while array is not None and not isinstance(array, np.memmap):
        array = array.base if isinstance(array, np.ndarray) else None
    mapping = getattr(array, "_mmap", None)
    if mapping is not None and hasattr(mapping, "madvise"):
        import mmap

        mapping.madvise(mmap.MADV_DONTNEED)
