"""The mood lexicon: a data file read into phrases and their meanings."""

from __future__ import annotations

import pytest

from gateway.features.mood_lexicon import DEFAULT_LEXICON, Lexicon, LexiconError, default_lexicon


def _lexicon(tmp_path, text: str) -> Lexicon:
    path = tmp_path / "lexicon.yaml"
    path.write_text(text, encoding="utf-8")
    return Lexicon.load(path)


def test_meanings_borrow_other_entries_and_cycles_end(tmp_path):
    lexicon = _lexicon(tmp_path, "soccer: football\nfootball: sport goal striker\nsport: football\n")
    assert lexicon.entries[("soccer",)] == ("football", "sport", "football", "goal", "striker")
    assert lexicon.entries[("sport",)] == ("football", "sport", "goal", "striker")


def test_longest_phrase_wins_and_stop_words_outside_phrases_are_dropped(tmp_path):
    lexicon = _lexicon(tmp_path, "tears: drama\ntears of joy: comedy\nwant to laugh: comedy jokes\n")
    parts = lexicon.read("I want to laugh, tears of joy and tears")
    assert [(p.text, p.terms) for p in parts] == [
        ("want to laugh", ("comedy", "jokes")),
        ("tears of joy", ("comedy",)),
        ("tears", ("drama",)),
    ]


def test_an_emoji_is_one_part_with_its_names_meanings(tmp_path):
    lexicon = _lexicon(tmp_path, "soccer ball: football\ncrying: sad\n")
    assert [(p.text, p.terms) for p in lexicon.read("⚽😢")] == [
        ("⚽", ("football",)),
        ("😢", ("sad", "face")),
    ]


def test_keys_may_be_written_as_emoji(tmp_path):
    lexicon = _lexicon(tmp_path, "'🎾': tennis wimbledon\n")
    assert lexicon.read("🎾")[0].terms == ("tennis", "wimbledon")


def test_the_shipped_lexicon_loads_and_covers_the_issue_s_moods():
    lexicon = default_lexicon()
    assert lexicon.source == str(DEFAULT_LEXICON)
    for mood in ("football", "⚽", "tennis", "sad", "😢", "want to laugh", "excited", "bored", "😂"):
        (part,) = lexicon.read(mood)
        assert part.terms, mood


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("sad: [drama, tears\n", "invalid YAML"),
        ("- sad\n- drama\n", "expected `phrase: meaning` lines"),
        ("sad:\n", "the meaning must be text"),
        ("yes: comedy\n", "is not text; quote it"),
        ("'!!': comedy\n", "has no word"),
        ("Sad: drama\nsad: comedy\n", "are the same words"),
    ],
)
def test_a_broken_lexicon_is_refused_with_its_file_and_entry(tmp_path, text, says):
    with pytest.raises(LexiconError) as caught:
        _lexicon(tmp_path, text)
    assert says in str(caught.value) and "lexicon.yaml" in str(caught.value)


def test_a_missing_lexicon_file_is_refused(tmp_path):
    with pytest.raises(LexiconError, match="cannot read it"):
        Lexicon.load(tmp_path / "absent.yaml")
