"""The mood lexicon: what people type as a mood, said in the catalogue's own words.

A data file (``mood_lexicon.yaml`` beside this module, documented there; a deployer's copy via
``serving.mood_lexicon``) maps words and phrases, feelings and emoji names included, to words
of the post texts and topic names. Reading a mood turns each typed word, phrase or emoji into
a ``MoodPart``: the text as typed and the terms it means, for the encoder to look up.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from gateway.features.mood_text import MoodUnit, emoji_name, mood_units, tokens

DEFAULT_LEXICON = Path(__file__).with_name("mood_lexicon.yaml")

Key = tuple[str, ...]


class LexiconError(ValueError):
    """The lexicon file cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class MoodPart:
    """One typed word, phrase or emoji, and the terms (words, topic names) it stands for."""

    text: str
    terms: tuple[str, ...]


class Lexicon:
    """Phrases → terms, expanded once at load: a word of a meaning that is itself a key counts
    as itself and as that key's meaning (never twice along one chain, so cycles end)."""

    def __init__(self, entries: dict[Key, Key], source: str = "") -> None:
        self.source = source
        self._raw = entries
        self.longest = max((len(k) for k in entries), default=0)
        self.entries = {key: self._expand(key, frozenset({key})) for key in entries}

    @classmethod
    def load(cls, path: str | Path | None = None) -> Lexicon:
        path = Path(path) if path else DEFAULT_LEXICON
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise LexiconError(f"mood lexicon {path}: cannot read it ({exc.strerror or exc})") from exc
        except yaml.YAMLError as exc:
            raise LexiconError(f"mood lexicon {path}: invalid YAML: {exc}") from exc
        data = data or {}
        if not isinstance(data, dict):
            raise LexiconError(
                f"mood lexicon {path}: expected `phrase: meaning` lines, found a {type(data).__name__}"
            )
        entries: dict[Key, Key] = {}
        written: dict[Key, str] = {}
        for raw_key, raw_value in data.items():
            if not isinstance(raw_key, str | int) or isinstance(raw_key, bool):
                raise LexiconError(f"mood lexicon {path}: key {raw_key!r} is not text; quote it")
            if not isinstance(raw_value, str | int) or isinstance(raw_value, bool):
                raise LexiconError(
                    f"mood lexicon {path}: entry {raw_key!r}: the meaning must be text (words and topic "
                    f"names), found {raw_value!r}; quote it"
                )
            key = _words_of(str(raw_key))
            if not key:
                raise LexiconError(
                    f"mood lexicon {path}: key {raw_key!r} has no word of two or more characters"
                )
            if key in written:
                raise LexiconError(
                    f"mood lexicon {path}: keys {written[key]!r} and {raw_key!r} are the same words; keep one"
                )
            written[key] = str(raw_key)
            entries[key] = tuple(_words_of(str(raw_value)))
        return cls(entries, str(path))

    def _expand(self, key: Key, chain: frozenset[Key]) -> Key:
        out: list[str] = []
        for phrase in _phrases(self._raw[key], self._raw, self.longest):
            out.extend(w for w in phrase if w not in ENGLISH_STOP_WORDS)
            if phrase in self._raw and phrase not in chain:
                out.extend(self._expand(phrase, chain | {phrase}))
        return tuple(out)

    def parts(self, unit: MoodUnit) -> list[MoodPart]:
        """Typed words: each phrase of the lexicon (longest first) or word is a part; stop
        words that are no phrase are dropped. An emoji is one part with all its name's terms."""
        found = []
        for phrase in _phrases(unit.tokens, self.entries, self.longest):
            if phrase in self.entries:
                found.append(MoodPart(" ".join(phrase), self.entries[phrase]))
            elif phrase[0] not in ENGLISH_STOP_WORDS:
                found.append(MoodPart(phrase[0], phrase))
        if unit.emoji:
            return [MoodPart(unit.text, tuple(t for part in found for t in part.terms))]
        return found

    def read(self, text: str) -> tuple[MoodPart, ...]:
        """The typed mood as parts; ``MoodTextError`` (plain message) if it has no words."""
        return tuple(part for unit in mood_units(text) for part in self.parts(unit))


def _words_of(text: str) -> Key:
    """A key or meaning as tokens; an emoji written in the file counts as its name."""
    return tuple(tokens(text if text.isascii() else emoji_name(text)))


def _phrases(words: Key, known: dict[Key, Key], longest: int) -> list[Key]:
    """Greedy longest-match of known phrases over ``words``; other words one by one."""
    out, i = [], 0
    while i < len(words):
        for size in range(min(longest, len(words) - i), 0, -1):
            if size > 1 and words[i : i + size] not in known:
                continue
            out.append(words[i : i + size])
            i += size
            break
        else:  # longest == 0: an empty lexicon
            out.append(words[i : i + 1])
            i += 1
    return out


@lru_cache(maxsize=1)
def default_lexicon() -> Lexicon:
    """The lexicon shipped with the package (loaded once)."""
    return Lexicon.load(DEFAULT_LEXICON)
