"""The pluggable mood encoder: a word-vector model directory that the tests build themselves."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from gateway.features.mood_encoder import check_mood_settings, load_mood_encoder
from gateway.features.mood_lexicon import Lexicon
from gateway.features.word_vectors import WordVectors, WordVectorsError, import_text_vectors
from gateway.serving.state import Catalogue

EMPTY = Lexicon({})


def build_tiny_model(directory: Path, catalogue: Catalogue, seed: int = 0) -> Path:
    """A model that 'knows' what no post text says: each word of the catalogue points at the
    topic whose posts use it most, and three words absent from every text ("football",
    "soccer", "gadget") point at sport, sport and tech. Written by hand in the documented
    format (config.json + vectors.npz), not through the package's own writer."""
    rng = np.random.default_rng(seed)
    dims = 12
    topics = catalogue.topic_names
    direction = {
        t: v / np.linalg.norm(v) for t, v in zip(topics, rng.normal(size=(len(topics), dims)), strict=True)
    }
    uses: dict[str, Counter] = {}
    for text, topic in zip(catalogue.texts, catalogue.topics, strict=True):
        for word in set(text.lower().split()):
            word = word.strip(".,#@")
            if word.isalpha() and len(word) > 2:
                uses.setdefault(word, Counter())[topic] += 1
    words = sorted(uses)
    vectors = [direction[uses[w].most_common(1)[0][0]] + 0.3 * rng.normal(size=dims) for w in words]
    for extra, topic in (("football", "sport"), ("soccer", "sport"), ("gadget", "tech")):
        words.append(extra)
        vectors.append(direction[topic])
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(
        json.dumps({"format": "recsys-word-vectors", "version": 1, "dims": dims})
    )
    np.savez(directory / "vectors.npz", words=np.array(words), vectors=np.array(vectors, dtype=np.float32))
    return directory


@pytest.fixture(scope="module")
def catalogue(tiny_store_dir, tiny_store) -> Catalogue:
    return Catalogue.load(tiny_store_dir, tiny_store)


@pytest.fixture(scope="module")
def model_dir(catalogue, tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("vectors") / "tiny-model", catalogue)


def _top(similarity: np.ndarray, catalogue: Catalogue, n: int = 10) -> Counter:
    return Counter(catalogue.topics[i] for i in np.argsort(-similarity, kind="stable")[:n])


def test_a_model_directory_steers_words_no_post_contains(model_dir, tiny_store_dir, catalogue):
    encoder = load_mood_encoder(
        f"vectors:{model_dir}", tiny_store_dir, catalogue.texts, catalogue.topic_names, catalogue.topic_codes
    )
    assert encoder.space.posts.shape == (len(catalogue.texts), 12)
    for mood, topic in (("football", "sport"), ("soccer", "sport"), ("gadget", "tech")):
        match = encoder.encode(mood, EMPTY)  # no lexicon: the model alone knows the word
        assert match.matched and match.words == (mood,)
        assert _top(match.similarity, catalogue)[topic] >= 8, (mood, _top(match.similarity, catalogue))
    tfidf = load_mood_encoder(
        "tfidf", tiny_store_dir, catalogue.texts, catalogue.topic_names, catalogue.topic_codes
    )
    assert not tfidf.encode("football", EMPTY).matched
    assert not encoder.encode("xyzzy", EMPTY).matched
    assert encoder.encode("sport", EMPTY).topics == ("sport",)  # topic names work in any space


def test_words_are_lower_cased_and_unusable_ones_dropped():
    vectors = WordVectors.from_arrays(["Goal", "goal", "a", "x-y", "ok"], np.eye(5, 3) + 1)
    assert vectors.words == ["goal", "ok"]
    np.testing.assert_allclose(np.linalg.norm(vectors.vectors, axis=1), 1.0, rtol=1e-6)


def test_save_and_load_round_trip(tmp_path):
    original = WordVectors.from_arrays(["alpha", "beta"], np.array([[1.0, 0.0], [0.0, 2.0]]), source="test")
    loaded = WordVectors.load(original.save(tmp_path / "m"))
    assert loaded.words == ["alpha", "beta"] and loaded.source == "test"
    np.testing.assert_allclose(loaded.vectors, [[1, 0], [0, 1]])


def _write(directory: Path, config: object, **arrays) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    if arrays:
        np.savez(directory / "vectors.npz", **arrays)
    return directory


@pytest.mark.parametrize(
    ("config", "arrays", "says"),
    [
        ({"format": "recsys-word-vectors", "version": 1, "dims": 2}, {}, "cannot read"),
        (
            {"format": "glove", "version": 1, "dims": 2},
            {"words": ["ab"], "vectors": [[1, 2]]},
            "must say format",
        ),
        (
            {"format": "recsys-word-vectors", "version": 1, "dims": 3},
            {"words": ["ab"], "vectors": [[1, 2]]},
            "of 3 dims",
        ),
        (
            {"format": "recsys-word-vectors", "version": 1, "dims": 2},
            {"words": ["ab", "cd"], "vectors": [[1, 2]]},
            "expected 2",
        ),
        (
            {"format": "recsys-word-vectors", "version": 1, "dims": 2},
            {"words": ["ab"], "vectors": [[1, np.nan]]},
            "NaN",
        ),
        ({"format": "recsys-word-vectors", "version": 1, "dims": 2}, {"vectors": [[1, 2]]}, "unreadable"),
    ],
)
def test_a_broken_model_directory_is_refused_with_a_reason(tmp_path, config, arrays, says):
    directory = _write(tmp_path / "m", config, **arrays)
    with pytest.raises(WordVectorsError, match=says):
        WordVectors.load(directory)
    with pytest.raises(WordVectorsError):
        check_mood_settings(f"vectors:{directory}", None)  # what `recsys serve` checks before starting


def test_import_text_vectors_reads_glove_and_fasttext_files(tmp_path):
    glove = tmp_path / "glove.txt"
    glove.write_text("football 1 0 0\nsoccer 0.9 0.1 0\nthe 0 0 1\n")
    vectors = import_text_vectors(glove, tmp_path / "out", limit=2)
    assert vectors.words == ["football", "soccer"]
    assert WordVectors.load(tmp_path / "out").vectors.shape == (2, 3)
    fasttext = tmp_path / "wiki.vec"
    fasttext.write_text("2 2\nalpha 1 0\nbeta 0 1\n")
    assert import_text_vectors(fasttext, tmp_path / "ft").words == ["alpha", "beta"]
    bad = tmp_path / "bad.txt"
    bad.write_text("alpha 1 0\nbeta 1\n")
    with pytest.raises(WordVectorsError, match="bad.txt:2"):
        import_text_vectors(bad, tmp_path / "bad")
