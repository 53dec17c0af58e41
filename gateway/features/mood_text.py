"""A typed mood as units of words: plain-text checks, emoji named by their Unicode names.

People type moods as words and emoji. An emoji becomes the words of its Unicode name (the
``emoji`` package's CLDR names: ⚽ "soccer ball", 😢 "crying face"), so that the lexicon and
the encoder see words only; each emoji stays one unit, so that a response can say whether
"⚽" was understood. Words are cut as scikit-learn's TF-IDF cuts post texts (``\\w\\w+``,
lower case), so that a mood and the posts meet on the same tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import emoji

from gateway.features.text import TOKEN

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
# A letter, or a character an emoji starts with (every non-ASCII first character of the
# emoji package's emoji lies in these ranges; ASCII ones are keycaps, which carry U+20E3).
_WORDISH = r"[^\W\d_]|[\u00a9\u00ae\u203c-\u3299" + "\U0001f000-\U0001faff]"  # astral: as characters
_PLAIN = r"[^\x00-\x08\x0a-\x1f\x7f-\x9f\ufffd]"
# The rule as one regular expression, for the OpenAPI schema only (messages stay plain words):
# no control character, no U+FFFD, at least one letter or emoji.
MOOD_PATTERN = f"^{_PLAIN}*(?:{_WORDISH}){_PLAIN}*$"
_HAS_WORDISH = re.compile(_WORDISH)
EXAMPLE = "e.g. mood=football, mood=want to laugh or mood=⚽"


class MoodTextError(ValueError):
    """A mood that cannot be read as words; the message is for the person who typed it."""


@dataclass(frozen=True)
class MoodUnit:
    """A run of typed words, or one emoji, with its tokens (an emoji's are its name's)."""

    text: str
    tokens: tuple[str, ...]
    emoji: bool = False


def tokens(text: str) -> list[str]:
    """Lower-case word tokens (``_`` separates words: emoji names are written with it)."""
    return TOKEN.findall(text.replace("_", " ").lower())


def emoji_name(text: str) -> str:
    """Emoji replaced by their Unicode names as plain words: ⚽ → "soccer ball"."""
    return emoji.demojize(text, delimiters=(" ", " ")).replace("_", " ")


def mood_units(text: str) -> list[MoodUnit]:
    """Split a mood into runs of plain words and single emoji; raise ``MoodTextError`` with a
    plain message when it is empty, not one line of text, or has neither a letter nor an emoji
    (exactly what ``MOOD_PATTERN`` says)."""
    if _CONTROL.search(text):  # before stripping: some control characters count as white space
        raise MoodTextError("mood must be one line of plain text: it contains a control character")
    if "\ufffd" in text:
        raise MoodTextError("mood contains a character that was not valid UTF-8: send it as UTF-8 text")
    text = text.strip()
    if not text:
        raise MoodTextError(f"mood is empty: send a word or an emoji ({EXAMPLE})")
    if not _HAS_WORDISH.search(text):
        raise MoodTextError(f"mood has no words: send at least one word or emoji ({EXAMPLE})")
    units: list[MoodUnit] = []
    start = 0
    found = [] if text.isascii() else emoji.emoji_list(text)
    for hit in found:
        units.append(
            MoodUnit(text[start : hit["match_start"]], tuple(tokens(text[start : hit["match_start"]])))
        )
        units.append(MoodUnit(hit["emoji"], tuple(tokens(emoji_name(hit["emoji"]))), emoji=True))
        start = hit["match_end"]
    units.append(MoodUnit(text[start:], tuple(tokens(text[start:]))))
    return [u for u in units if u.text.strip()]
