"""The post text generator draws each word's index from the same stream as one scalar draw per
word (the generator before it was vectorised): a seed's worlds are unchanged."""

from __future__ import annotations

import numpy as np

from gateway.world import posts
from gateway.world.vocab import FILLER, SUBTOPICS, TOPIC_WORDS


def _words_one_by_one(rng, topic, sub, n, sub_share):
    """The previous generator, word by word."""
    kind = rng.random(n)
    sub_words, topic_words = SUBTOPICS[topic][sub], TOPIC_WORDS[topic]
    out = []
    for k in kind:
        if k < sub_share:
            out.append(sub_words[rng.integers(len(sub_words))])
        elif k < sub_share + 0.10:
            out.append(topic_words[rng.integers(len(topic_words))])
        else:
            out.append(FILLER[rng.integers(len(FILLER))])
    return out


def test_vectorised_words_equal_the_word_by_word_draws():
    for seed in range(3):
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        for topic, subs in SUBTOPICS.items():
            for sub in subs:
                for n, share in ((0, 0.3), (1, 0.3), (9, 0.12), (400, 0.13)):
                    assert posts._words(a, topic, sub, n, share) == _words_one_by_one(b, topic, sub, n, share)
                    assert a.random() == b.random()  # the streams are in the same state after


def test_generated_posts_equal_the_word_by_word_generator(monkeypatch):
    fast = posts.generate_posts(1500, np.random.default_rng(7))
    monkeypatch.setattr(posts, "_words", _words_one_by_one)
    slow = posts.generate_posts(1500, np.random.default_rng(7))
    assert fast[0].equals(slow[0]) and fast[1].equals(slow[1])
