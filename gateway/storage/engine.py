"""Database URLs and engines for PostgreSQL (psycopg2) and the embedded SQLite default."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError


class StorageError(RuntimeError):
    """A database could not be reached or used; the message says what to do."""


def normalize_url(url: str) -> str:
    """Map plain ``postgresql://`` / ``postgres://`` URLs to psycopg2 and check the scheme.

    SQLAlchemy 2.1 maps the bare ``postgresql`` scheme to psycopg 3, which is not a
    dependency here: the driver is pinned explicitly.
    """
    if not url or "://" not in url:
        raise StorageError(
            f"bad database URL {url!r}: expected postgresql://user@host/db or sqlite:///path.db"
        )
    scheme, rest = url.split("://", 1)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        scheme = "postgresql+psycopg2"
    if scheme not in ("postgresql+psycopg2", "sqlite"):
        raise StorageError(f"unsupported database scheme {scheme!r}: use postgresql://... or sqlite:///...")
    normalized = f"{scheme}://{rest}"
    try:
        make_url(normalized)
    except ArgumentError as exc:
        raise StorageError(f"bad database URL {url!r}: {exc}") from exc
    return normalized


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine without a connection probe (the serving path must start while the DB is down)."""
    normalized = normalize_url(url)
    if make_url(normalized).get_backend_name() == "sqlite":
        database = make_url(normalized).database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(normalized)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # executemany of a textual INSERT (the exposure log's batches) in pages of statements sent
    # together (psycopg2's execute_batch), not one round trip to the server per row.
    return create_engine(
        normalized,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 5},
        executemany_mode="values_plus_batch",
        executemany_batch_page_size=500,
    )


def connect(url: str, *, create: bool = False) -> Engine:
    """Build an engine and prove it can connect; raise StorageError with a readable message.

    ``create`` allows a new SQLite file (and its folder), or a new PostgreSQL database on a
    reachable server, to be made; otherwise a missing one is an error, as an unreachable
    server is.
    """
    normalized = normalize_url(url)
    parsed = make_url(normalized)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            path = Path(database)
            if not path.exists() and not create:
                raise StorageError(f"no database at {path}: run `recsys data synth` first (or pass --db)")
    if create and parsed.get_backend_name() == "postgresql" and parsed.database:
        _create_pg_database(parsed)
    engine = make_engine(normalized)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise StorageError(f"cannot connect to {parsed.render_as_string()}: {reason}") from exc
    except SQLAlchemyError as exc:
        raise StorageError(f"database error on {parsed.render_as_string()}: {exc}") from exc
    return engine


def _create_pg_database(url) -> None:
    """CREATE DATABASE if it is missing (through the server's maintenance database)."""
    admin = make_engine(url.set(database="postgres").render_as_string(hide_password=False))
    try:
        with admin.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}
            ).first()
            if not exists:
                conn.execute(text(f"CREATE DATABASE {admin.dialect.identifier_preparer.quote(url.database)}"))
    except SQLAlchemyError:
        pass  # unreachable server or no rights: the connection attempt below says why
    finally:
        admin.dispose()
