"""Moods through the real app (FastAPI TestClient, real lifespan) on the tiny world: emoji,
topic and sub-topic names, feelings, unmatched moods in the response and the exposure log, the
lexicon reloaded, and the pluggable word-vector encoder."""

from __future__ import annotations

import re

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from gateway.exposure import MemoryExposureSink
from gateway.features.mood_lexicon import DEFAULT_LEXICON
from gateway.serving.main import create_app
from gateway.serving.state import Catalogue
from tests.conftest import write_config
from tests.features.test_word_vectors import build_tiny_model

WHEN = "2021-12-20T20:00:00"
PATH = "/post/recommendations/"


def _app(root, tiny_db, tiny_store_dir, tiny_models, **serving):
    config = write_config(
        root / "config.yaml", db=tiny_db, features_dir=tiny_store_dir.parent, models=tiny_models
    )
    if serving:
        data = yaml.safe_load(config.read_text())
        data["serving"] = {**data.get("serving", {}), **serving}
        config.write_text(yaml.safe_dump(data))
    sink = MemoryExposureSink()
    return create_app(config_path=config, exposure_sink=sink), sink, config


@pytest.fixture(scope="module")
def lexicon_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("lexicon") / "moods.yaml"
    path.write_text(DEFAULT_LEXICON.read_text())
    return path


@pytest.fixture(scope="module")
def served(tiny_db, tiny_store_dir, tiny_models, lexicon_file, tmp_path_factory):
    app, sink, config = _app(
        tmp_path_factory.mktemp("moods"), tiny_db, tiny_store_dir, tiny_models, mood_lexicon=str(lexicon_file)
    )
    with TestClient(app) as client:
        yield client, sink, app


def _get(client, user: int, **params):
    return client.get(PATH, params={"id": user, "time": WHEN, "limit": 5, **params})


def _topic_share(client, users, topic, **params) -> float:
    return float(
        np.mean(
            [
                [p["topic"] == topic for p in _get(client, u, **params).json()["recommendations"]]
                for u in users
            ]
        )
    )


def test_topic_and_sub_topic_names_steer_the_feed(served, tiny_store):
    client, _, _ = served
    users = [int(u) for u in tiny_store.user_ids[100:140]]
    for mood, topic in (
        ("football", "sport"),
        ("tennis", "sport"),
        ("sport", "sport"),
        ("tech", "tech"),
        ("horror", "movie"),
    ):
        plain, moody = _topic_share(client, users, topic), _topic_share(client, users, topic, mood=mood)
        assert moody >= max(plain + 0.3, 0.9), (mood, plain, moody)


def test_an_emoji_is_read_as_its_words(served, tiny_store):
    client, _, _ = served
    user = int(tiny_store.user_ids[5])
    by_emoji, by_word = _get(client, user, mood="⚽"), _get(client, user, mood="football")
    assert by_emoji.status_code == 200, by_emoji.text
    assert by_emoji.json()["mood"] == {"matched": True, "words": ["⚽"], "ignored": []}
    assert by_emoji.json()["recommendations"] == by_word.json()["recommendations"]
    sad = _get(client, user, mood="😢").json()
    assert (
        sad["mood"]["matched"]
        and sad["recommendations"] == _get(client, user, mood="sad").json()["recommendations"]
    )


def test_feelings_reach_content(served, tiny_store):
    client, _, _ = served
    users = [int(u) for u in tiny_store.user_ids[200:230]]
    for mood in ("sad", "want to laugh", "excited", "bored"):
        body = _get(client, users[0], mood=mood).json()
        assert body["mood"]["matched"] and body["mood"]["words"] == [mood], body["mood"]
    assert _topic_share(client, users, "movie", mood="sad") >= 0.9


def test_an_unmatched_mood_is_said_and_logged(served, tiny_store):
    client, sink, app = served
    user = int(tiny_store.user_ids[9])
    plain = _get(client, user)
    nonsense = _get(client, user, mood=" xyzzy plugh ")
    assert nonsense.status_code == 200
    assert nonsense.json()["mood"] == {"matched": False, "words": [], "ignored": ["xyzzy", "plugh"]}
    assert nonsense.json()["recommendations"] == plain.json()["recommendations"]
    assert "mood" not in plain.json()
    matched = _get(client, user, mood="tennis")
    app.state.writer.flush()
    rows = {r: sink.rows[r] for r in (x.headers["X-Request-ID"] for x in (plain, nonsense, matched))}
    assert [(row.mood, row.mood_matched) for row in rows.values()] == [
        (None, None),
        ("xyzzy plugh", False),
        ("tennis", True),
    ]


@pytest.mark.parametrize("mood", ["12345 !!!", "-- 42 %", "...", "ok\x07", "   ", "x" * 201])
def test_a_mood_without_words_is_a_422_in_plain_language(served, tiny_store, mood):
    client, _, _ = served
    r = _get(client, int(tiny_store.user_ids[0]), mood=mood)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "mood" in detail
    assert not re.search(r"[\\^$\[\]]", detail), detail  # no regular expression in the message


def test_the_schema_documents_the_mood_field_and_the_rule_the_server_applies(served, tiny_store):
    client, _, _ = served
    schema = client.get("/openapi.json").json()
    operation = schema["paths"][PATH]["get"]
    (mood,) = [p for p in operation["parameters"] if p["name"] == "mood"]
    assert "⚽" in mood["description"]
    pattern = re.compile(mood["schema"]["pattern"])  # JSON Schema: applies to the string branch only
    user = int(tiny_store.user_ids[0])
    for text in (
        "⚽",
        "😂👍🏽",
        "1️⃣",
        "football",
        "½",
        "★",
        "12345 !!!",
        "-- %",
        "ok\x07",
        "a\ufffd",
        "\x85x",
    ):
        assert (_get(client, user, mood=text).status_code == 200) == bool(pattern.match(text)), repr(text)
    assert set(schema["components"]["schemas"]["MoodOut"]["properties"]) == {"matched", "words", "ignored"}
    assert "mood" in schema["components"]["schemas"]["RecommendationResponse"]["properties"]


def test_the_lexicon_is_reloaded_with_the_configuration(served, tiny_store, lexicon_file, monkeypatch):
    client, _, _ = served
    monkeypatch.setenv("RECSYS_ADMIN_TOKEN", "tok")
    auth = {"Authorization": "Bearer tok"}
    users = [int(u) for u in tiny_store.user_ids[300:320]]
    original = lexicon_file.read_text()
    try:
        assert not _get(client, users[0], mood="zork").json()["mood"]["matched"]
        lexicon_file.write_text(original + "\nzork: tech\n")
        assert client.post("/admin/reload", headers=auth).status_code == 200
        assert _topic_share(client, users, "tech", mood="zork") >= 0.9
        lexicon_file.write_text("zork: [broken\n")
        refused = client.post("/admin/reload", headers=auth)
        assert refused.status_code == 422 and "invalid YAML" in refused.json()["detail"]
        assert _topic_share(client, users, "tech", mood="zork") >= 0.9  # the previous lexicon still serves
    finally:
        lexicon_file.write_text(original)
        client.post("/admin/reload", headers=auth)


def test_the_word_vector_encoder_serves_from_a_model_directory(
    tiny_db, tiny_store_dir, tiny_store, tiny_models, tmp_path
):
    model = build_tiny_model(tmp_path / "model", Catalogue.load(tiny_store_dir, tiny_store))
    empty = tmp_path / "empty.yaml"
    empty.write_text("# no entries: only the model knows what football is\n")
    app, _, _ = _app(
        tmp_path,
        tiny_db,
        tiny_store_dir,
        tiny_models,
        mood_encoder=f"vectors:{model}",
        mood_lexicon=str(empty),
    )
    users = [int(u) for u in tiny_store.user_ids[100:130]]
    with TestClient(app) as client:
        body = _get(client, users[0], mood="soccer").json()
        assert body["mood"] == {"matched": True, "words": ["soccer"], "ignored": []}
        plain, moody = (
            _topic_share(client, users, "sport"),
            _topic_share(client, users, "sport", mood="football"),
        )
        assert moody >= plain + 0.3, (plain, moody)  # a dense space's cosine steers more softly
