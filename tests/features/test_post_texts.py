"""The catalogue's texts as one UTF-8 buffer read with ``os.pread`` and the store's daily tables
memory-mapped: the same values as the Python strings and the loaded arrays they replace."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gateway.features import artifacts as A
from gateway.features.artifacts import FeatureStoreError, InMemory, NpyRanges, load_npz_mapped
from gateway.features.post_texts import PostTexts, load_post_texts
from gateway.features.store import FeatureStore, compact_counts
from gateway.features.taste import TasteModel
from gateway.serving.state import Catalogue


def _reference_texts(store_dir) -> list[str]:
    frame = pd.read_parquet(store_dir / A.POST_TEXTS).sort_values("post_id")
    return frame["text"].tolist()


def test_catalogue_texts_equal_the_posts_texts(tiny_store_dir, tiny_store):
    catalogue = Catalogue.load(tiny_store_dir, tiny_store)
    reference = _reference_texts(tiny_store_dir)
    assert isinstance(catalogue.texts._data, NpyRanges)  # the build wrote the buffer
    assert len(catalogue.texts) == len(reference) == len(tiny_store.post_ids)
    assert list(catalogue.texts) == reference
    assert [catalogue.texts[i] for i in range(len(reference))] == reference
    assert catalogue.texts[-1] == reference[-1]
    frame = pd.read_parquet(tiny_store_dir / A.POST_TEXTS).sort_values("post_id")
    assert catalogue.topics == frame["topic"].tolist()


def test_a_store_without_the_buffer_reads_the_parquet(tiny_store_dir, tiny_store, tmp_path):
    old = tmp_path / "old-store"
    shutil.copytree(tiny_store_dir, old)
    (old / A.POST_TEXT_BYTES).unlink()
    (old / A.POST_TEXT_OFFSETS).unlink()
    texts = load_post_texts(old, tiny_store.post_ids)
    assert isinstance(texts._data, InMemory)
    assert list(texts) == _reference_texts(tiny_store_dir)
    with pytest.raises(FeatureStoreError, match="does not match"):
        load_post_texts(old, tiny_store.post_ids[:-1])


def test_texts_round_trip_any_unicode(tmp_path):
    texts = ["plain", "", "emoji 😷 #covid", "Ünïcödé — «quotes»", "x" * 5000, "日本語"]
    packed = PostTexts.from_strings(texts)
    assert list(packed) == texts and len(packed) == len(texts)
    assert packed[2] == texts[2] and packed[-1] == texts[-1] and packed[1:3] == texts[1:3]
    with pytest.raises(IndexError):
        packed[len(texts)]
    packed.save(tmp_path)
    read = PostTexts(NpyRanges(tmp_path / A.POST_TEXT_BYTES), np.load(tmp_path / A.POST_TEXT_OFFSETS))
    assert list(read) == texts and [read[i] for i in range(len(texts))] == texts and read[-1] == texts[-1]
    with pytest.raises(FeatureStoreError, match="offsets"):
        PostTexts(np.zeros(3, np.uint8), np.array([0, 2]))


def test_iteration_reads_block_by_block_alike(tmp_path, monkeypatch):
    texts = [f"text {i} " + "é" * (i % 7) for i in range(23)]
    PostTexts.from_strings(texts).save(tmp_path)
    monkeypatch.setattr("gateway.features.post_texts.ITER_BLOCK", 5)
    read = PostTexts(NpyRanges(tmp_path / A.POST_TEXT_BYTES), np.load(tmp_path / A.POST_TEXT_OFFSETS))
    assert list(read) == texts
    assert list(PostTexts.from_strings([])) == []


def test_served_texts_are_read_without_mapping_the_buffer(tiny_store_dir, tiny_store):
    """The buffer's file is never mapped into the process: its pages do not count in a worker's
    resident size (a mapped read makes the page-cache folio around it resident)."""
    texts = Catalogue.load(tiny_store_dir, tiny_store).texts
    assert texts[0] == _reference_texts(tiny_store_dir)[0] and len(list(texts)) == len(texts)
    mapped = Path("/proc/self/maps").read_text()
    assert str((tiny_store_dir / A.POST_TEXT_OFFSETS).resolve()) in mapped  # the offsets are mapped
    assert str((tiny_store_dir / A.POST_TEXT_BYTES).resolve()) not in mapped


def test_ranges_read_the_array_s_slices(tmp_path):
    array = np.arange(10, dtype=np.float32) / 3
    np.save(tmp_path / "a.npy", array)
    ranges = NpyRanges(tmp_path / "a.npy")
    assert len(ranges) == 10 and ranges.dtype == np.float32
    for lo, hi in ((0, 10), (3, 4), (5, 5), (8, 20), (7, 2)):
        read = ranges.read(lo, hi)
        assert read.dtype == array.dtype and np.array_equal(read, array[lo:hi])
        assert np.array_equal(InMemory(array).read(lo, hi), array[lo:hi])
    np.save(tmp_path / "b.npy", np.zeros((2, 2)))
    with pytest.raises(FeatureStoreError, match="1-D"):
        NpyRanges(tmp_path / "b.npy")


def test_daily_tables_are_memory_mapped_with_the_same_values(tiny_store_dir, tiny_store):
    loaded = dict(np.load(tiny_store_dir / A.POST_DAILY))
    mapped = load_npz_mapped(tiny_store_dir / A.POST_DAILY)
    assert set(mapped) == set(loaded) == {"views", "likes", "taste_views", "taste_likes"}
    for name, values in loaded.items():
        assert isinstance(mapped[name], np.memmap)
        assert mapped[name].dtype == values.dtype and np.array_equal(mapped[name], values)
    assert isinstance(tiny_store.post_likes_before.base, np.memmap)
    np.testing.assert_array_equal(tiny_store.post_views_before, loaded["views"])


def test_compressed_and_fortran_members_are_read_too(tmp_path):
    a, b = np.arange(12, dtype=np.int32).reshape(3, 4), np.asfortranarray(np.random.default_rng(0).random((3, 5)))
    np.savez(tmp_path / "plain.npz", a=a, b=b, empty=np.zeros((0, 2)))
    plain = load_npz_mapped(tmp_path / "plain.npz")
    assert np.array_equal(plain["a"], a) and np.array_equal(plain["b"], b) and plain["empty"].shape == (0, 2)
    np.savez_compressed(tmp_path / "packed.npz", a=a)
    packed = load_npz_mapped(tmp_path / "packed.npz")
    assert not isinstance(packed["a"], np.memmap) and np.array_equal(packed["a"], a)


def test_a_store_built_before_the_taste_daily_tables_sums_them_alike(tiny_store_dir, tiny_store):
    """The build's taste-cluster daily counts equal the sums a store without them computes."""
    daily = load_npz_mapped(tiny_store_dir / A.POST_DAILY)
    old = {"views": daily["views"], "likes": daily["likes"]}
    store = FeatureStore.from_arrays(
        tiny_store.manifest,
        pd.read_parquet(tiny_store_dir / A.USERS),
        pd.read_parquet(tiny_store_dir / A.POSTS),
        dict(np.load(tiny_store_dir / A.EVENTS)),
        old,
        TasteModel.from_arrays(np.load(tiny_store_dir / A.TASTE)),
    )
    for name in ("taste_views_before", "taste_likes_before"):
        built, summed = getattr(tiny_store, name), getattr(store, name)
        assert built.dtype == summed.dtype == np.float64 and np.array_equal(built, summed)
    # and by the previous formula: each cluster's columns summed
    views, cluster = np.asarray(daily["views"]), tiny_store.posts["taste_cluster"]
    for g in range(len(tiny_store.taste.bias)):
        assert np.array_equal(store.taste_views_before[:, g], views[:, cluster == g].sum(axis=1))


def test_daily_counts_are_stored_in_the_smallest_dtype_that_holds_them():
    for high, dtype in ((0, np.uint8), (255, np.uint8), (256, np.uint16), (65535, np.uint16), (65536, np.int32)):
        table = np.array([[0, high], [3, 4]], np.int32)
        assert compact_counts(table).dtype == dtype and np.array_equal(compact_counts(table), table), high
    negative = np.array([[-1, 4]], np.int32)
    assert compact_counts(negative).dtype == np.int32 and np.array_equal(compact_counts(negative), negative)


def test_a_narrow_store_serves_what_an_int32_store_serves(tiny_store_dir, tiny_store):
    """The build wrote the tiny world's daily tables in fewer bytes; the same tables as int32 (a
    store built before) give the same features, popularity scores and fallback lists."""
    from gateway.rankers.baselines import PopularityRanker
    from gateway.serving.fallback import PopularityFallback

    daily = load_npz_mapped(tiny_store_dir / A.POST_DAILY)
    assert daily["views"].dtype in (np.uint8, np.uint16) and daily["likes"].dtype in (np.uint8, np.uint16)
    wide = FeatureStore.from_arrays(
        tiny_store.manifest,
        pd.read_parquet(tiny_store_dir / A.USERS),
        pd.read_parquet(tiny_store_dir / A.POSTS),
        dict(np.load(tiny_store_dir / A.EVENTS)),
        {name: np.asarray(values, dtype=np.int32 if name in ("views", "likes") else None) for name, values in daily.items()},
        TasteModel.from_arrays(np.load(tiny_store_dir / A.TASTE)),
    )
    day0, days = tiny_store.manifest["day0"], tiny_store.manifest["days"]
    users = [0, 5, len(tiny_store.user_ids) - 1]
    seconds = [day0 + d * 86400 + 9 * 3600 for d in (0, days // 2, days + 2)]
    narrow_rows, wide_rows = tiny_store.compute(users, seconds), wide.compute(users, seconds)
    for name, values in narrow_rows.items():
        assert values.dtype == wide_rows[name].dtype and np.array_equal(values, wide_rows[name]), name
    for method in ("popularity_before", "views_before"):
        a, b = getattr(tiny_store, method)(np.array(seconds)), getattr(wide, method)(np.array(seconds))
        assert a.dtype == b.dtype == np.int32 and np.array_equal(a, b)
    ranker = PopularityRanker()
    u, t = np.array(users), np.array(seconds)
    assert np.array_equal(ranker.score(tiny_store, u, t), ranker.score(wide, u, t))
    topics = tiny_store.posts["topic"]
    narrow_fallback, wide_fallback = PopularityFallback(tiny_store, topics), PopularityFallback(wide, topics)
    for s in seconds:
        assert narrow_fallback.top(-1, s, 50) == wide_fallback.top(-1, s, 50)
