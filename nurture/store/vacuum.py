"""``nurture db vacuum``: rewrites a SQLite database compactly, with today's page size.

A database made by an earlier version keeps the page size it was made with (4 KiB),
since SQLite changes it only while rewriting the whole file, and not in WAL mode. New
databases get :data:`~nurture.store.database.SQLITE_PAGE_SIZE`; this brings an old one
to it, and gives back the space that deleted rows left behind. It needs the database to
itself: while the service has it open, SQLite refuses to leave WAL mode, and nothing
changes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url

from nurture.exceptions import NurtureError
from nurture.store.database import SQLITE_PAGE_SIZE, normalise_url


class VacuumError(NurtureError):
    """The database could not be rewritten; it is as it was."""


def vacuum_sqlite(url: str, *, page_size: int = SQLITE_PAGE_SIZE) -> tuple[int, int]:
    """Rewrites the SQLite database at ``url`` with ``page_size`` pages; returns the page
    size (bytes) before and after. Raises :class:`VacuumError` when it is missing or in
    use."""
    path = make_url(normalise_url(url)).database
    if not path or path == ":memory:" or not Path(path).exists():
        raise VacuumError(f"no SQLite database at {path!r}")
    conn = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        before = int(conn.execute("PRAGMA page_size").fetchone()[0])
        # Out of WAL mode first: there VACUUM keeps the page size it has.
        if conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0] != "delete":
            raise VacuumError(_IN_USE)
        try:
            conn.execute(f"PRAGMA page_size={int(page_size)}")
            conn.execute("VACUUM")
        finally:
            conn.execute("PRAGMA journal_mode=WAL")
        return before, int(conn.execute("PRAGMA page_size").fetchone()[0])
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):  # another process has it open
            raise VacuumError(_IN_USE) from None
        raise VacuumError(f"the database could not be rewritten: {exc}") from None
    finally:
        conn.close()


_IN_USE = "the database is in use: stop the service, then run this again"
