"""Bulk load (COPY on PostgreSQL, executemany on SQLite) and bulk read into pandas."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator, Sequence

import pandas as pd
from sqlalchemy import Engine, Table, inspect, text

from gateway.storage.engine import is_postgres


def table_exists(engine: Engine, name: str) -> bool:
    return inspect(engine).has_table(name)


def drop_tables(engine: Engine, names: Sequence[str]) -> None:
    """Drop these tables (with their indexes) where they exist."""
    with engine.begin() as conn:
        for name in names:
            conn.execute(text(f'DROP TABLE IF EXISTS "{name}"'))


def _copy_into_postgres(engine: Engine, table: Table, frame: pd.DataFrame) -> None:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=False)
    buffer.seek(0)
    columns = ", ".join(f'"{c}"' for c in frame.columns)
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            cursor.copy_expert(f'COPY "{table.name}" ({columns}) FROM STDIN WITH (FORMAT csv)', buffer)
        raw.commit()
    finally:
        raw.close()


def _insert_into_sqlite(engine: Engine, table: Table, frame: pd.DataFrame) -> None:
    columns = []
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_datetime64_any_dtype(series):
            series = series.dt.strftime("%Y-%m-%d %H:%M:%S")
        columns.append(series.tolist())
    placeholders = ", ".join("?" for _ in frame.columns)
    names = ", ".join(f'"{c}"' for c in frame.columns)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.executemany(
            f'INSERT INTO "{table.name}" ({names}) VALUES ({placeholders})', zip(*columns, strict=True)
        )
        raw.commit()
    finally:
        raw.close()


def bulk_insert(engine: Engine, table: Table, frame: pd.DataFrame) -> None:
    """Append ``frame`` (columns named as the table's) in one bulk operation."""
    if frame.empty:
        return
    if is_postgres(engine):
        _copy_into_postgres(engine, table, frame)
    else:
        _insert_into_sqlite(engine, table, frame)


def iter_query(
    engine: Engine, sql: str, *, chunksize: int = 1_000_000, params: dict | None = None
) -> Iterator[pd.DataFrame]:
    """Stream a SELECT as DataFrames: COPY ... TO STDOUT through a temp file on PostgreSQL
    (fast, constant memory on the server side), chunked cursor reads on SQLite."""
    if is_postgres(engine) and not params:
        with tempfile.TemporaryFile(mode="w+b") as spool:
            raw = engine.raw_connection()
            try:
                with raw.cursor() as cursor:
                    cursor.copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)", spool)
            finally:
                raw.close()
            spool.seek(0)
            yield from pd.read_csv(spool, keep_default_na=False, na_values=[""], chunksize=chunksize)
    else:
        with engine.connect() as conn:
            yield from pd.read_sql_query(text(sql), conn, params=params, chunksize=chunksize)


def read_frame(
    engine: Engine,
    sql: str,
    *,
    parse_dates: Sequence[str] = (),
    params: dict | None = None,
) -> pd.DataFrame:
    """Run a SELECT and return one DataFrame."""
    chunks = list(iter_query(engine, sql, params=params))
    frame = pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]
    for name in parse_dates:
        frame[name] = pd.to_datetime(frame[name], format="ISO8601")
    return frame
