"""The mood encoder on the tiny world: topic names, emoji, the lexicon and unmatched moods."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from gateway.features.mood_encoder import MoodEncoderError, load_mood_encoder
from gateway.features.mood_lexicon import Lexicon, default_lexicon
from gateway.features.mood_text import MoodTextError
from gateway.features.text import PostTfidf
from gateway.serving.state import Catalogue

EMPTY = Lexicon({})


@pytest.fixture(scope="module")
def catalogue(tiny_store_dir, tiny_store) -> Catalogue:
    return Catalogue.load(tiny_store_dir, tiny_store)


@pytest.fixture(scope="module")
def encoder(tiny_store_dir, catalogue):
    return load_mood_encoder(
        "tfidf", tiny_store_dir, catalogue.texts, catalogue.topic_names, catalogue.topic_codes
    )


def top_topics(similarity: np.ndarray, catalogue: Catalogue, n: int = 10) -> Counter:
    return Counter(catalogue.topics[i] for i in np.argsort(-similarity, kind="stable")[:n])


def test_word_cosine_is_scikit_learn_s(tiny_store_dir, catalogue):
    data = np.load(tiny_store_dir / "text_space.npz")
    vocabulary = data["vocabulary"].tolist()
    space = PostTfidf.from_texts(vocabulary, data["idf"], catalogue.texts)
    reference = TfidfVectorizer(vocabulary=vocabulary, sublinear_tf=True, stop_words="english")
    reference.idf_ = data["idf"]
    posts = reference.transform(catalogue.texts)
    for terms in (["goal", "striker", "goal"], ["horror"], [vocabulary[3], vocabulary[-1]]):
        expected = (posts @ reference.transform([" ".join(terms)]).T).toarray().ravel()
        np.testing.assert_allclose(space.similarity(terms), expected, atol=1e-6)
    assert space.similarity(["xyzzy"]) is None


def test_the_store_s_tfidf_columns_give_the_tokenised_similarities_bit_for_bit(tiny_store_dir, catalogue, tmp_path):
    """A worker reads the build's columns instead of tokenising every text: the same cosines,
    bit for bit; a store built without them is tokenised at start-up as before."""
    from gateway.features import artifacts as A
    from gateway.features.artifacts import InMemory, NpyRanges

    data = np.load(tiny_store_dir / A.TEXT_SPACE)
    vocabulary = data["vocabulary"].tolist()
    tokenised = PostTfidf.from_texts(vocabulary, data["idf"], catalogue.texts)
    stored = PostTfidf.load(tiny_store_dir, catalogue.texts)
    assert isinstance(stored.rows, NpyRanges) and isinstance(stored.values, NpyRanges)
    manifest = A.read_manifest(tiny_store_dir)["post_tfidf"]
    assert manifest["files"] == list(A.POST_TFIDF) and manifest["entries"] == len(stored.rows) > 0
    counts = np.diff(stored.bounds)
    words = [vocabulary[j] for j in np.argsort(-counts)[:20]] + [vocabulary[j] for j in np.flatnonzero(counts == 0)[:2]]
    for terms in [[w] for w in words] + [words[:3], [words[0], words[0], words[5]], [vocabulary[-1], "xyzzy"]]:
        a, b = stored.similarity(terms), tokenised.similarity(terms)
        assert a.dtype == b.dtype == np.float64 and np.array_equal(a, b)
    assert stored.similarity(["xyzzy"]) is None
    old = tmp_path / "old-store"
    old.mkdir()
    (old / A.TEXT_SPACE).write_bytes((tiny_store_dir / A.TEXT_SPACE).read_bytes())
    fallback = PostTfidf.load(old, catalogue.texts)
    assert isinstance(fallback.rows, InMemory)
    assert np.array_equal(fallback.similarity(words[:3]), stored.similarity(words[:3]))


def test_a_topic_name_selects_its_topic_s_posts(encoder, catalogue):
    for code, name in enumerate(catalogue.topic_names):
        match = encoder.encode(name, EMPTY)
        assert match.matched and match.words == (name,) and match.topics == (name,)
        np.testing.assert_array_equal(match.similarity, (catalogue.topic_codes == code).astype(float))


def test_sub_topic_names_reach_their_posts_through_the_lexicon(encoder, catalogue):
    for mood, topic in (
        ("football", "sport"),
        ("tennis", "sport"),
        ("horror", "movie"),
        ("elections", "politics"),
    ):
        match = encoder.encode(mood, default_lexicon())
        assert match.matched, mood
        assert top_topics(match.similarity, catalogue) == Counter({topic: 10}), mood
    assert not encoder.encode("football", EMPTY).matched  # no post text contains the word


def test_emoji_behave_like_their_words(encoder):
    lexicon = default_lexicon()
    for symbol, word in (("⚽", "football"), ("😢", "sad"), ("😂", "want to laugh")):
        by_emoji, by_word = encoder.encode(symbol, lexicon), encoder.encode(word, lexicon)
        assert by_emoji.matched and by_emoji.words == (symbol,)
        np.testing.assert_allclose(by_emoji.similarity, by_word.similarity)


def test_feelings_reach_content_through_the_lexicon(encoder, catalogue):
    lexicon = default_lexicon()
    for mood in ("sad", "bored", "excited"):  # no post text uses these words
        assert not encoder.encode(mood, EMPTY).matched, mood
    for mood in ("sad", "want to laugh", "bored", "excited"):
        assert encoder.encode(mood, lexicon).matched, mood
    assert top_topics(encoder.encode("sad", lexicon).similarity, catalogue) == Counter({"movie": 10})


def test_editing_the_lexicon_changes_where_a_mood_steers(encoder, catalogue, tmp_path):
    path = tmp_path / "lexicon.yaml"
    path.write_text("glum: sport\n")
    assert top_topics(encoder.encode("glum", Lexicon.load(path)).similarity, catalogue) == Counter(
        {"sport": 10}
    )
    path.write_text("glum: tech\n")
    assert top_topics(encoder.encode("glum", Lexicon.load(path)).similarity, catalogue) == Counter(
        {"tech": 10}
    )
    path.write_text("other: tech\n")
    assert not encoder.encode("glum", Lexicon.load(path)).matched


def test_a_mood_that_matches_nothing_is_flagged_and_changes_nothing(encoder):
    match = encoder.encode("xyzzy plugh", default_lexicon())
    assert not match.matched and match.words == () and match.ignored == ("xyzzy", "plugh")
    assert not match.similarity.any()
    partly = encoder.encode("xyzzy football", default_lexicon())
    assert partly.matched and partly.words == ("football",) and partly.ignored == ("xyzzy",)


def test_a_mood_without_words_raises_a_plain_error(encoder):
    with pytest.raises(MoodTextError, match="mood has no words"):
        encoder.encode("!!! 123", default_lexicon())


def test_results_are_cached_and_read_only(encoder):
    lexicon = default_lexicon()
    first = encoder.encode("tennis", lexicon)
    assert encoder.encode("tennis", lexicon) is first
    assert not first.similarity.flags.writeable
    assert encoder.encode("tennis", Lexicon({})) is not first  # another lexicon, another answer


def test_an_unknown_encoder_is_refused(tiny_store_dir, catalogue):
    with pytest.raises(MoodEncoderError, match="use tfidf or vectors:"):
        load_mood_encoder(
            "bert", tiny_store_dir, catalogue.texts, catalogue.topic_names, catalogue.topic_codes
        )
