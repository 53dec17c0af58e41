"""The exposure log: every served recommendation, written off the request path.

Requests put an ``Exposure`` on an in-memory queue (never blocking). A background thread
writes batches to the ``exposures`` table; when the database fails, the batch is appended
to a local JSONL spill file and replayed once the database answers again. Inserts are
idempotent on ``request_id`` (ON CONFLICT DO NOTHING), so a replay never duplicates rows.
``close()`` drains the queue: nothing is lost on a graceful stop.

The same writer carries the shadow models' lists (``ShadowExposure`` → ``shadow_exposures``),
best-effort: without the crash journal (a crash loses the rows still queued), with the spill
and its replay.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    text,
)

from gateway.tables import Tables

log = logging.getLogger("gateway.exposure")

exposure_metadata = MetaData()
exposures = Table(
    Tables.EXPOSURES,
    exposure_metadata,
    Column("request_id", String(64), primary_key=True),
    Column("served_at", DateTime, nullable=False),
    Column("request_time", DateTime, nullable=False),
    Column("user_id", Integer, nullable=False, index=True),
    Column("experiment", String(128), nullable=False),
    Column("arm", String(64), nullable=False),
    Column("bucket", Float, nullable=False),
    Column("in_experiment", Boolean, nullable=False),
    Column("model_version", String(128), nullable=False),
    Column("post_ids", Text, nullable=False),  # JSON list, in served order
    Column("latency_ms", Float, nullable=False),
    Column("topic", String(32), nullable=True),
    Column("mood", String(200), nullable=True),
    Column("cold_start", Boolean, nullable=False, default=False),
    Column("mood_matched", Boolean, nullable=True),  # NULL: no mood (or logged before this column)
    # Interleaved requests: each position's team (an arm's name), JSON list aligned with post_ids,
    # and the model version of every team, JSON object {arm: version}.
    Column("teams", Text, nullable=True),
    Column("model_versions", Text, nullable=True),
    # The shadow model asked to score this request (a missing shadow row then means: dropped).
    Column("shadow_version", String(128), nullable=True),
    # Two-stage serving: posts the ranker scored (the candidate set after de-duplication and
    # exclusion) and the retrieval index's version; NULL = the whole catalogue was ranked.
    Column("candidates", Integer, nullable=True),
    Column("retrieval_version", String(128), nullable=True),
    # Answered by the popularity fallback instead of the arm's model: "shed" (admission control)
    # or "deadline" (the ranker was late); NULL = the arm's model served it.
    Column("served_by", String(32), nullable=True),
)
shadow_exposures = Table(
    Tables.SHADOW_EXPOSURES,
    exposure_metadata,
    Column("request_id", String(64), primary_key=True),
    Column("model_version", String(128), primary_key=True),
    Column("arm", String(64), nullable=False),
    Column("scored_at", DateTime, nullable=False),
    Column("post_ids", Text, nullable=False),  # JSON list, the shadow's top-k in order ([] on error)
    Column("latency_ms", Float, nullable=False),  # scoring time, without the wait in the queue
    Column("error", Text, nullable=True),
)


# Any fixed 64-bit key: advisory locks are per database, and only ensure_table takes this one.
_SCHEMA_LOCK_KEY = 0x7265637379730001


def ensure_table(engine: Engine, table: Table = exposures) -> None:
    """Create ``table``, or add the columns a newer gateway logs to an older one.

    Columns added after the first release are nullable, so rows written by an older gateway
    stay valid; nothing is ever dropped or retyped. On PostgreSQL the whole check runs under a
    transaction-scoped advisory lock: the gateway's workers start together, and two concurrent
    CREATE TABLEs of one name collide in the catalogue (a unique violation on ``pg_type``)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
        exposure_metadata.create_all(conn, tables=[table])
        present = {c["name"] for c in inspect(conn).get_columns(table.name)}
        for column in (c for c in table.columns if c.name not in present):
            if not column.nullable:
                raise RuntimeError(
                    f"cannot add NOT NULL column {column.name!r} to an existing {table.name} table"
                )
            kind = column.type.compile(dialect=engine.dialect)
            conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))


def ensure_exposure_table(engine: Engine) -> None:
    ensure_table(engine, exposures)


@dataclass
class Exposure:
    request_id: str
    served_at: datetime
    request_time: datetime
    user_id: int
    experiment: str
    arm: str
    bucket: float
    in_experiment: bool
    model_version: str
    post_ids: list[int]
    latency_ms: float
    topic: str | None = None
    mood: str | None = None
    cold_start: bool = False
    mood_matched: bool | None = None
    teams: list[str] | None = None
    model_versions: dict[str, str] | None = None
    shadow_version: str | None = None
    candidates: int | None = None
    retrieval_version: str | None = None
    served_by: str | None = None

    def to_row(self) -> dict:
        row = dict(self.__dict__)  # shallow: the lists are replaced by their JSON just below
        row["post_ids"] = json.dumps(self.post_ids)
        for key in ("teams", "model_versions"):
            row[key] = None if row[key] is None else json.dumps(row[key])
        return row

    def to_json(self) -> str:
        row = self.to_row()
        row["served_at"] = self.served_at.isoformat()
        row["request_time"] = self.request_time.isoformat()
        return json.dumps(row)

    @classmethod
    def from_json(cls, line: str) -> Exposure:
        row = json.loads(line)
        row["served_at"] = datetime.fromisoformat(row["served_at"])
        row["request_time"] = datetime.fromisoformat(row["request_time"])
        row["post_ids"] = json.loads(row["post_ids"])
        for key in ("teams", "model_versions"):  # absent from lines an older gateway wrote
            if isinstance(row.get(key), str):
                row[key] = json.loads(row[key])
        return cls(**row)


@dataclass
class ShadowExposure:
    """A shadow model's list for one served request (never shown to the user)."""

    request_id: str
    model_version: str
    arm: str
    scored_at: datetime
    post_ids: list[int]
    latency_ms: float
    error: str | None = None

    def to_row(self) -> dict:
        return {**asdict(self), "post_ids": json.dumps(self.post_ids)}

    def to_json(self) -> str:
        return json.dumps({**self.to_row(), "scored_at": self.scored_at.isoformat()})

    @classmethod
    def from_json(cls, line: str) -> ShadowExposure:
        row = json.loads(line)
        row["scored_at"] = datetime.fromisoformat(row["scored_at"])
        row["post_ids"] = json.loads(row["post_ids"])
        return cls(**row)


class ExposureSink(Protocol):
    def write(self, batch: list) -> None: ...


class SqlSink:
    """Writes records to ``table``; idempotent on its primary key (a replay never duplicates)."""

    def __init__(self, engine: Engine, table: Table) -> None:
        self.engine = engine
        self.table = table
        columns = [c.name for c in table.columns]
        keys = ", ".join(c.name for c in table.primary_key.columns)
        self._insert = text(
            f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join(f':{c}' for c in columns)}) "
            f"ON CONFLICT ({keys}) DO NOTHING"
        )
        self._ready = False

    def ensure_table(self) -> None:
        ensure_table(self.engine, self.table)
        self._ready = True

    def write(self, batch: list) -> None:
        if not self._ready:
            self.ensure_table()
        with self.engine.begin() as conn:
            conn.execute(self._insert, [e.to_row() for e in batch])


class SqlExposureSink(SqlSink):
    """Writes to ``exposures`` in the configured database; idempotent on request_id."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, exposures)


class SqlShadowSink(SqlSink):
    """Writes to ``shadow_exposures``; idempotent on (request_id, model_version)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, shadow_exposures)


class MemoryExposureSink:
    """In-memory twin for tests; ``fail`` simulates a database outage."""

    def __init__(self) -> None:
        self.rows: dict = {}  # exposures by request_id; shadow rows by (request_id, model_version)
        self.fail = False

    def write(self, batch: list) -> None:
        if self.fail:
            raise ConnectionError("simulated outage")
        for e in batch:
            key = e.request_id if isinstance(e, Exposure) else (e.request_id, e.model_version)
            self.rows.setdefault(key, e)


@dataclass
class WriterStats:
    enqueued: int = 0
    written: int = 0
    spilled: int = 0
    replayed: int = 0
    dropped: int = 0  # rows neither written nor spilled (the spill directory could not be written)
    journal_errors: int = 0  # submissions the crash journal could not record
    degraded: bool = False
    last_error: str | None = None
    disk_error: str | None = None  # the spill directory's last failure (full, read-only, missing)

    @property
    def unhealthy(self) -> bool:
        """The database fails (rows go to the spill) or the spill directory does."""
        return self.degraded or self.disk_error is not None


class ExposureWriter:
    """Background batch writer with a JSONL spill for outages and a crash journal.

    ``submit`` appends each exposure to a per-process journal before the response is sent
    (flushed to the OS: it survives ``kill -9`` of the process). The writer thread rotates the
    journal and deletes the old file only once everything submitted before the rotation has
    been written or spilled; journals left by a dead process are replayed at start-up.

    ``record`` is the type written (``Exposure``, or ``ShadowExposure`` for the shadow log):
    anything with ``to_row``, ``to_json`` and a ``from_json`` class method.
    """

    def __init__(
        self,
        sink: ExposureSink,
        spill_path: Path,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        max_queue: int = 200_000,
        journal: bool = True,
        rotate_every: float = 5.0,
        record: type = Exposure,
        name: str = "exposure-writer",
    ) -> None:
        self.sink = sink
        self.record = record
        self.spill_path = Path(spill_path)
        self.stats = WriterStats()
        try:
            self.spill_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # serve anyway: rows the database refuses are then dropped, counted
            self._disk_failed(exc, "cannot create the spill directory")
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.queue: queue.Queue[Exposure] = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards the spill file
        self._journal_lock = threading.Lock()
        self._journal_seq = 0
        self._journaling = journal
        self._journal = self._open_journal() if journal else None
        self._rotate_every = rotate_every
        self._last_rotation = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # -- crash journal -------------------------------------------------------------------
    def journal_path(self, seq: int) -> Path:
        return self.spill_path.with_name(f"journal-{os.getpid()}-{seq}.jsonl")

    def _open_journal(self):
        """The next journal file, or None (counted, logged) when the directory cannot take it."""
        self._journal_seq += 1
        try:
            return self.journal_path(self._journal_seq).open("a")
        except OSError as exc:
            self._disk_failed(exc, "crash journal off")
            return None

    def _disk_failed(self, exc: OSError, what: str) -> None:
        message = f"{what}: {type(exc).__name__}: {exc}"
        if self.stats.disk_error != message:
            log.error("exposure log degraded, %s (%s)", what, self.spill_path.parent)
        self.stats.disk_error = message

    def _rotate_journal(self) -> None:
        """New submissions go to a new file; the old one is deleted once its entries are safe."""
        if not self._journaling:
            return
        with self._journal_lock:
            old, old_path = self._journal, self.journal_path(self._journal_seq)
            self._journal = self._open_journal()
        if old is not None:
            with contextlib.suppress(OSError):  # a full disk fails the close's flush
                old.close()
        while batch := self._drain(self.batch_size):  # everything submitted before the rotation
            self._write(batch)
        old_path.unlink(missing_ok=True)
        self._last_rotation = time.monotonic()

    def start(self) -> ExposureWriter:
        self._thread.start()
        return self

    def submit(self, exposure: Exposure, *, journal: bool = True) -> None:
        """Never blocks on the database: journals the exposure, then queues it (or, when the
        queue is full, spills it)."""
        if journal and self._journal is not None:
            with self._journal_lock:
                try:
                    self._journal.write(exposure.to_json() + "\n")
                    self._journal.flush()
                except OSError as exc:  # a full or failing disk: serve on, without the journal line
                    self.stats.journal_errors += 1
                    self._disk_failed(exc, "crash journal write failed")
        try:
            self.queue.put_nowait(exposure)
            self.stats.enqueued += 1
        except queue.Full:
            self._spill([exposure])

    # -- internals -----------------------------------------------------------------------
    def _drain(self, limit: int) -> list[Exposure]:
        batch = []
        while len(batch) < limit:
            try:
                batch.append(self.queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _spill(self, batch: list[Exposure]) -> None:
        """Append to the spill file; if the disk refuses (full, read-only), drop and count."""
        try:
            with self._lock, self.spill_path.open("a") as f:
                for e in batch:
                    f.write(e.to_json() + "\n")
                f.flush()
        except OSError as exc:
            self.stats.dropped += len(batch)
            self._disk_failed(exc, f"could not spill {len(batch)} rows, dropped")
            return
        self.stats.spilled += len(batch)

    def _write(self, batch: list[Exposure]) -> bool:
        try:
            return self._write_or_spill(batch)
        finally:
            for _ in batch:
                self.queue.task_done()

    def _write_or_spill(self, batch: list[Exposure]) -> bool:
        try:
            self.sink.write(batch)
        except Exception as exc:  # noqa: BLE001 - any sink failure means: spill and retry later
            self.stats.degraded = True
            self.stats.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            log.warning(
                "exposure sink failed (%s); spilling %d rows to %s",
                self.stats.last_error,
                len(batch),
                self.spill_path,
            )
            self._spill(batch)
            return False
        self.stats.written += len(batch)
        return True

    def replay_spill(self) -> int:
        """Write the spill file back to the sink; keep it if the sink still fails."""
        with self._lock:
            if not self.spill_path.exists() or self.spill_path.stat().st_size == 0:
                return 0
            pending = self.spill_path.with_suffix(".replaying")
            self.spill_path.replace(pending)
        lines = [line for line in pending.read_text().splitlines() if line.strip()]
        batch = [self.record.from_json(line) for line in lines]
        try:
            for start in range(0, len(batch), self.batch_size):
                self.sink.write(batch[start : start + self.batch_size])
        except Exception as exc:  # noqa: BLE001
            with self._lock, self.spill_path.open("a") as f:
                f.write("\n".join(lines) + "\n")
            pending.unlink()
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            return 0
        pending.unlink()
        self.stats.replayed += len(batch)
        self.stats.degraded = False
        return len(batch)

    def _run(self) -> None:
        last_replay = 0.0
        while not self._stop.is_set():
            batch = self._drain(self.batch_size)
            if batch:
                ok = self._write(batch)
                if ok and self.stats.degraded:
                    self.replay_spill()
            if len(batch) < self.batch_size:  # let the next batch gather: one transaction per interval
                self._stop.wait(self.flush_interval)
            if time.monotonic() - self._last_rotation > self._rotate_every:
                self._rotate_journal()
            if time.monotonic() - last_replay > 5.0:
                last_replay = time.monotonic()
                if self.spill_path.exists():
                    self.replay_spill()
        self._flush_all()

    def _flush_all(self) -> None:
        while batch := self._drain(self.batch_size):
            self._write(batch)
        self.replay_spill()
        if self._journal is not None:  # everything is written or spilled: the journal is done
            with self._journal_lock:
                with contextlib.suppress(OSError):  # a full disk fails the close's flush
                    self._journal.close()
                with contextlib.suppress(OSError):
                    self.journal_path(self._journal_seq).unlink(missing_ok=True)
                self._journal = None

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything queued so far has been written (or spilled)."""
        deadline = time.monotonic() + timeout
        while self.queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self, timeout: float = 30.0) -> None:
        """Stop the thread after writing everything queued; spill what cannot be written."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        else:
            self._flush_all()
