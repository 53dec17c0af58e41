"""The catalogue's texts as one UTF-8 buffer and the store's daily tables memory-mapped: the
same values as the Python strings and the loaded arrays they replace."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from gateway.features import artifacts as A
from gateway.features.artifacts import FeatureStoreError, load_npz_mapped
from gateway.features.post_texts import PostTexts, load_post_texts
from gateway.features.store import FeatureStore
from gateway.features.taste import TasteModel
from gateway.serving.state import Catalogue


def _reference_texts(store_dir) -> list[str]:
    frame = pd.read_parquet(store_dir / A.POST_TEXTS).sort_values("post_id")
    return frame["text"].tolist()


def test_catalogue_texts_equal_the_posts_texts(tiny_store_dir, tiny_store):
    catalogue = Catalogue.load(tiny_store_dir, tiny_store)
    reference = _reference_texts(tiny_store_dir)
    assert isinstance(catalogue.texts._data, np.memmap)  # the build wrote the buffer
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
    assert not isinstance(texts._data, np.memmap)
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
    mapped = PostTexts(
        np.load(tmp_path / A.POST_TEXT_BYTES, mmap_mode="r"), np.load(tmp_path / A.POST_TEXT_OFFSETS, mmap_mode="r")
    )
    assert list(mapped) == texts
    mapped.release()  # unmapped pages are read again when touched
    assert list(mapped) == texts
    with pytest.raises(FeatureStoreError, match="offsets"):
        PostTexts(np.zeros(3, np.uint8), np.array([0, 2]))


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
