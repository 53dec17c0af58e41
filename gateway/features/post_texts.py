"""The catalogue's post texts off the Python heap: every text's UTF-8 bytes in one buffer, in
post-index order, with an offsets array; a text is decoded only when it is asked for (the few
posts a response returns).

``recsys features build`` writes the buffer and the offsets as two ``.npy`` files beside the
other artifacts; a serving process reads a text's bytes with ``os.pread`` (``NpyRanges``) and
memory-maps the offsets, so the texts stay in the page cache, shared by all workers, and are
not mapped into any of them (a mapped read would make the page-cache folio around each text
resident). A store built before these files existed is read from ``post_texts.parquet``
through Arrow (one buffer in memory, still no Python string per post).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from gateway.features import artifacts as A
from gateway.features.artifacts import FeatureStoreError, InMemory, NpyRanges, Ranges

ITER_BLOCK = 4096  # texts read at once when iterating


class PostTexts(Sequence[str]):
    """Texts by dense post index: ``texts[i]`` decodes post i's text."""

    def __init__(self, data: Ranges | np.ndarray, offsets: np.ndarray) -> None:
        if offsets.ndim != 1 or len(offsets) < 1 or int(offsets[-1]) != len(data):
            raise FeatureStoreError("post text offsets do not match the text buffer")
        self._data: Ranges = InMemory(data) if isinstance(data, np.ndarray) else data
        self._offsets = offsets

    @classmethod
    def from_strings(cls, texts: Sequence[str]) -> PostTexts:
        encoded = [t.encode("utf-8") for t in texts]
        offsets = np.zeros(len(encoded) + 1, np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return cls(np.frombuffer(b"".join(encoded), np.uint8), offsets)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        j = int(i) + n if int(i) < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"post index {i} out of range ({n} posts)")
        return self._data.read(int(self._offsets[j]), int(self._offsets[j + 1])).tobytes().decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        """Every text in order, the bytes read a block of texts at a time."""
        for start in range(0, len(self), ITER_BLOCK):
            bounds = np.asarray(self._offsets[start : min(start + ITER_BLOCK, len(self)) + 1]).tolist()
            block = self._data.read(bounds[0], bounds[-1]).tobytes()
            base = bounds[0]
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
                yield block[lo - base : hi - base].decode("utf-8")

    def save(self, store_dir: Path) -> None:
        np.save(store_dir / A.POST_TEXT_BYTES, self._data.read(0, len(self._data)))
        np.save(store_dir / A.POST_TEXT_OFFSETS, np.asarray(self._offsets))


def load_post_texts(store_dir: Path, post_ids: np.ndarray) -> PostTexts:
    """The store's texts (read from the build's buffer file when it wrote one) in the order of
    ``post_ids`` (the store's, ascending)."""
    import pyarrow.parquet as pq

    ids = pq.read_table(store_dir / A.POST_TEXTS, columns=["post_id"]).column("post_id").to_numpy()
    if not np.array_equal(np.sort(ids), post_ids):
        raise FeatureStoreError(f"{store_dir}: {A.POST_TEXTS} does not match the store's posts")
    if (store_dir / A.POST_TEXT_BYTES).exists() and (store_dir / A.POST_TEXT_OFFSETS).exists():
        texts = PostTexts(
            NpyRanges(store_dir / A.POST_TEXT_BYTES),
            np.load(store_dir / A.POST_TEXT_OFFSETS, mmap_mode="r"),
        )
    else:
        texts = _from_parquet(store_dir / A.POST_TEXTS)
    if len(texts) != len(post_ids):
        raise FeatureStoreError(f"{store_dir}: the post text buffer does not match the store's posts")
    return texts


def _from_parquet(path: Path) -> PostTexts:
    """One Arrow buffer of the parquet's texts sorted by post id (no Python string per post)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["post_id", "text"]).sort_by("post_id")
    column = table.column("text").cast(pa.large_string()).combine_chunks()
    _, offsets_buffer, data_buffer = column.buffers()
    offsets = np.frombuffer(offsets_buffer, np.int64)[column.offset : column.offset + len(column) + 1]
    data = np.frombuffer(data_buffer, np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    data = data[int(offsets[0]) : int(offsets[-1])]
    return PostTexts(data, offsets - offsets[0])
