"""A typed mood as units: emoji become their Unicode names, bad input gets a plain message."""

from __future__ import annotations

import re

import pytest

from gateway.features.mood_text import MoodTextError, mood_units


def test_emoji_become_the_words_of_their_names_and_stay_one_unit():
    units = mood_units("⚽ tonight 😢")
    assert [(u.text, u.tokens, u.emoji) for u in units] == [
        ("⚽", ("soccer", "ball"), True),
        (" tonight ", ("tonight",), False),
        ("😢", ("crying", "face"), True),
    ]
    assert mood_units("👍🏽")[0].tokens == ("thumbs", "up", "medium", "skin", "tone")
    assert mood_units("🤩")[0].tokens == ("star", "struck")  # "star-struck": hyphens split words


def test_plain_text_is_cut_as_the_post_texts_are():
    (unit,) = mood_units("  Want to LAUGH, a_b!  ")
    assert unit.tokens == ("want", "to", "laugh")  # one-letter words dropped, as scikit-learn does
    assert not unit.emoji
    assert mood_units("футбол")[0].tokens == ("футбол",)  # letters of any script are words


@pytest.mark.parametrize(
    ("mood", "says"),
    [
        ("", "mood is empty"),
        ("   ", "mood is empty"),
        ("12345 !!!", "mood has no words"),
        ("-- 42 %", "mood has no words"),
        ("ok\x07", "control character"),
        ("line\nbreak", "control character"),
        ("bad \ufffd byte", "not valid UTF-8"),
    ],
)
def test_moods_without_words_get_a_plain_message(mood, says):
    with pytest.raises(MoodTextError) as caught:
        mood_units(mood)
    message = str(caught.value)
    assert says in message
    assert not re.search(r"[\\^$\[\]]", message), message  # plain language, no regular expression


def test_an_emoji_alone_is_a_mood_with_words():
    assert mood_units("⚽")[0].emoji
    assert mood_units("1️⃣")[0].tokens == ("keycap",)  # "keycap 1": the digit is one character
    assert mood_units("tab\tseparated")[0].tokens == ("tab", "separated")


def test_the_schema_s_pattern_admits_every_emoji_the_emoji_package_knows():
    import emoji

    from gateway.features.mood_text import MOOD_PATTERN

    pattern = re.compile(MOOD_PATTERN)
    missed = [e for e in emoji.EMOJI_DATA if not pattern.match(e)]
    assert not missed, missed[:10]
    assert not pattern.match("12345 !!!") and not pattern.match("ok\x07") and pattern.match("⚽")
