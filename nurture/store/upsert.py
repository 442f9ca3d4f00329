"""``INSERT ... ON CONFLICT DO NOTHING`` for both backends, and counting what it inserted.

Count inserted rows with :func:`insert_ignored`, never with ``rowcount``: through
psycopg 3, SQLAlchemy reports ``-1`` for inserts, so a ``rowcount == 1`` check would
silently treat every insert as a conflict on PostgreSQL. RETURNING tells the truth on
both backends.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_ignore(conn: Connection, table: Table) -> Any:
    """An insert statement that skips rows violating a unique constraint."""
    return _insert_ignore(conn.dialect.name, table)


def insert_ignore_returning_key(conn: Connection, table: Table) -> Any:
    """:func:`insert_ignore` returning the primary key of each row really inserted; built
    once per table, the values given with each execution."""
    return _returning(conn.dialect.name, table, key_only=True)


def insert_ignore_returning_row(conn: Connection, table: Table) -> Any:
    """:func:`insert_ignore` returning every column of the row really inserted, as
    ``select(table)`` reads it; built once per table."""
    return _returning(conn.dialect.name, table, key_only=False)


@functools.cache
def _returning(dialect: str, table: Table, *, key_only: bool) -> Any:
    columns = table.primary_key.columns if key_only else table.columns
    return _insert_ignore(dialect, table).returning(*columns)


@functools.cache
def _insert_ignore(dialect: str, table: Table) -> Any:
    # Built once per table (statements are immutable; callers add to a copy): a sign-up
    # makes several inserts, and building one costs more than SQLite takes to run it.
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def insert_ignored(
    conn: Connection, table: Table, rows: Mapping[str, Any] | Sequence[Mapping[str, Any]]
) -> int:
    """Inserts ``rows`` skipping conflicts; returns how many were really inserted."""
    if not rows:
        return 0
    return len(conn.execute(insert_ignore_returning_key(conn, table), rows).all())
