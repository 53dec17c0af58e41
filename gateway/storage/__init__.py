"""Storage edge: engines, the source schema, bulk load and bulk read, dropping tables."""

from gateway.storage.engine import StorageError, connect, normalize_url
from gateway.storage.io import bulk_insert, drop_tables, iter_query, read_frame, table_exists

__all__ = [
    "StorageError",
    "bulk_insert",
    "connect",
    "drop_tables",
    "iter_query",
    "normalize_url",
    "read_frame",
    "table_exists",
]
