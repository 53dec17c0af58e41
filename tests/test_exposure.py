"""Exposure writer: batching, outage spill and exactly-once replay, flush on close."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import pytest

from gateway.exposure import (
    Exposure,
    ExposureWriter,
    MemoryExposureSink,
    ShadowExposure,
    SqlExposureSink,
    SqlShadowSink,
)
from gateway.storage import connect, read_frame


def _exposure(i: int) -> Exposure:
    return Exposure(
        request_id=f"r-{i}-{uuid.uuid4().hex[:6]}",
        served_at=datetime(2026, 1, 1, 12, 0, 0),
        request_time=datetime(2021, 12, 1, 10, 0, 0),
        user_id=200 + i,
        experiment="e",
        arm="control",
        bucket=12.0,
        in_experiment=True,
        model_version="m1",
        post_ids=[3, 1, 2],
        latency_ms=4.2,
    )


def test_batches_reach_the_sink_and_close_flushes(tmp_path):
    sink = MemoryExposureSink()
    writer = ExposureWriter(sink, tmp_path / "spill.jsonl", batch_size=7, flush_interval=0.01).start()
    items = [_exposure(i) for i in range(100)]
    for e in items:
        writer.submit(e)
    writer.close()
    assert set(sink.rows) == {e.request_id for e in items}
    assert sink.rows[items[0].request_id].post_ids == [3, 1, 2]


def test_outage_spills_then_replays_exactly_once(tmp_path):
    sink = MemoryExposureSink()
    sink.fail = True
    writer = ExposureWriter(sink, tmp_path / "spill.jsonl", batch_size=10, flush_interval=0.01).start()
    first = [_exposure(i) for i in range(30)]
    for e in first:
        writer.submit(e)
    writer.flush()
    assert writer.stats.degraded and writer.stats.spilled == 30 and not sink.rows
    assert len((tmp_path / "spill.jsonl").read_text().splitlines()) == 30
    sink.fail = False
    second = [_exposure(100 + i) for i in range(5)]
    for e in second:
        writer.submit(e)
    writer.close()
    assert set(sink.rows) == {e.request_id for e in first + second}
    assert not writer.stats.degraded
    assert not (tmp_path / "spill.jsonl").exists() or (tmp_path / "spill.jsonl").read_text() == ""
    # Replaying the same rows again changes nothing (idempotent on request_id).
    sink.write(first)
    assert len(sink.rows) == 35


def test_sql_sink_is_idempotent(tmp_path):
    engine = connect(f"sqlite:///{tmp_path}/x.db", create=True)
    sink = SqlExposureSink(engine)
    batch = [_exposure(i) for i in range(20)]
    sink.write(batch)
    sink.write(batch[:10])
    rows = read_frame(engine, "SELECT request_id, post_ids FROM exposures")
    assert len(rows) == 20 and rows["post_ids"].iloc[0] == "[3, 1, 2]"


def test_an_older_exposures_table_gains_the_new_columns(tmp_path):
    """A table written by an older gateway (fewer columns) is extended, its rows kept."""
    from sqlalchemy import text

    from gateway.exposure import ensure_exposure_table, exposures

    engine = connect(f"sqlite:///{tmp_path / 'old.db'}", create=True)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE exposures (request_id VARCHAR(64) PRIMARY KEY, user_id INTEGER)"))
        conn.execute(text("INSERT INTO exposures VALUES ('old-1', 7)"))
    with pytest.raises(RuntimeError, match="NOT NULL"):  # required columns cannot be added later
        ensure_exposure_table(engine)
    engine = connect(f"sqlite:///{tmp_path / 'older.db'}", create=True)
    nullable = [c for c in exposures.columns if c.nullable]
    keep = [c for c in exposures.columns if not c.nullable]
    with engine.begin() as conn:
        ddl = ", ".join(f"{c.name} {c.type.compile(dialect=engine.dialect)}" for c in keep)
        conn.execute(text(f"CREATE TABLE exposures ({ddl}, PRIMARY KEY (request_id))"))
    ensure_exposure_table(engine)
    ensure_exposure_table(engine)  # idempotent
    columns = set(read_frame(engine, "SELECT * FROM exposures").columns)
    assert {c.name for c in nullable} <= columns
    sink = SqlExposureSink(engine)
    sink.write([_exposure(1)])
    assert len(read_frame(engine, "SELECT request_id FROM exposures")) == 1


def test_mood_matched_is_added_to_a_table_of_the_previous_release_and_old_lines_load(tmp_path):
    """The exposures table as the gateway before `mood_matched` wrote it gains the column
    (NULL for its rows); a spill/journal line written then still loads."""
    from dataclasses import replace

    from sqlalchemy import text

    from gateway.exposure import ensure_exposure_table, exposures

    engine = connect(f"sqlite:///{tmp_path / 'previous.db'}", create=True)
    previous = [c for c in exposures.columns if c.name != "mood_matched"]
    with engine.begin() as conn:
        ddl = ", ".join(f"{c.name} {c.type.compile(dialect=engine.dialect)}" for c in previous)
        conn.execute(text(f"CREATE TABLE exposures ({ddl}, PRIMARY KEY (request_id))"))
    old = _exposure(1)
    old_line = old.to_json().replace(', "mood_matched": null', "")
    assert "mood_matched" not in old_line
    loaded = Exposure.from_json(old_line)
    assert loaded.mood_matched is None and loaded.request_id == old.request_id
    with engine.begin() as conn:  # a row the previous gateway wrote
        row = {k: v for k, v in old.to_row().items() if k != "mood_matched"}
        conn.execute(
            text(f"INSERT INTO exposures ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})"), row
        )
    SqlExposureSink(engine).write([replace(_exposure(2), mood="xyzzy", mood_matched=False)])
    rows = read_frame(engine, "SELECT mood, mood_matched FROM exposures ORDER BY user_id")
    assert rows["mood"].isna().tolist() == [True, False]
    assert rows["mood_matched"].isna().tolist() == [True, False] and not rows["mood_matched"].iloc[1]
    ensure_exposure_table(engine)  # idempotent
def test_interleaved_fields_round_trip_and_old_lines_still_load(tmp_path):
    e = _exposure(1)
    e.teams, e.model_versions, e.shadow_version = (
        ["control", "test", "test"],
        {"control": "c", "test": "t"},
        "s1",
    )
    again = Exposure.from_json(e.to_json())
    assert again == e
    old = json.loads(_exposure(2).to_json())
    for key in ("teams", "model_versions", "shadow_version"):  # a line an older gateway wrote
        del old[key]
    loaded = Exposure.from_json(json.dumps(old))
    assert loaded.teams is None and loaded.model_versions is None and loaded.shadow_version is None
    engine = connect(f"sqlite:///{tmp_path}/x.db", create=True)
    SqlExposureSink(engine).write([e])
    row = read_frame(engine, "SELECT teams, model_versions, shadow_version FROM exposures").iloc[0]
    assert json.loads(row["teams"]) == e.teams and json.loads(row["model_versions"]) == e.model_versions


def _shadow(i: int) -> ShadowExposure:
    return ShadowExposure(f"r-{i}", "shadow-v1", "test", datetime(2026, 1, 1, 12), [5, 4, 3], 2.5)


def test_shadow_rows_use_the_same_writer_spill_and_replay_without_a_journal(tmp_path):
    sink = MemoryExposureSink()
    sink.fail = True
    spill = tmp_path / "shadow-1.jsonl"
    writer = ExposureWriter(
        sink, spill, batch_size=4, flush_interval=0.01, journal=False, record=ShadowExposure
    )
    writer.start()
    rows = [_shadow(i) for i in range(10)]
    for row in rows:
        writer.submit(row, journal=False)
    writer.flush()
    assert writer.stats.spilled == 10 and not list(tmp_path.glob("journal-*"))
    sink.fail = False
    writer.close()
    assert set(sink.rows) == {(r.request_id, r.model_version) for r in rows}
    assert sink.rows[("r-3", "shadow-v1")] == rows[3]


def test_sql_shadow_sink_is_idempotent_on_request_and_model(tmp_path):
    engine = connect(f"sqlite:///{tmp_path}/s.db", create=True)
    sink = SqlShadowSink(engine)
    other = ShadowExposure("r-1", "shadow-v2", "test", datetime(2026, 1, 1), [], 1.0, "ValueError: boom")
    sink.write([_shadow(1), _shadow(2)])
    sink.write([_shadow(1), other])
    rows = read_frame(engine, "SELECT request_id, model_version, post_ids, error FROM shadow_exposures")
    assert len(rows) == 3 and set(rows["error"].dropna()) == {"ValueError: boom"}


def test_gateway_workers_creating_the_table_at_once_do_not_collide(pg_url):
    """Several worker processes start on a fresh PostgreSQL database at the same moment: each
    creates the exposures table if missing. Without serialising that DDL, two CREATE TABLEs race
    on the catalogue (UniqueViolation on pg_type) and a worker's first rows go to the spill."""
    import threading

    from gateway.exposure import ensure_exposure_table
    from gateway.storage.engine import make_engine

    workers = 8
    engines = [make_engine(pg_url) for _ in range(workers)]
    for engine in engines:  # open every connection first, so the CREATEs really meet
        with engine.connect():
            pass
    start = threading.Barrier(workers)
    errors: list[BaseException] = []

    def create(engine) -> None:
        start.wait()
        try:
            ensure_exposure_table(engine)
        except BaseException as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    threads = [threading.Thread(target=create, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for engine in engines:
        engine.dispose()
    assert errors == []
