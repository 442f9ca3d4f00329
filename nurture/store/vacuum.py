"""``nurture db vacuum``: rewrites a SQLite database compactly, with today's page size.

A database made by an earlier version keeps the page size it was made with (4 KiB),
since SQLite changes it only while rewriting the whole file, and not in WAL mode. New
databases get :data:`~nurture.store.database.SQLITE_PAGE_SIZE`; this brings an old one
to it, and gives back the space that deleted rows left behind. It needs the database to
itself: while the service has it open, SQLite refuses to leave WAL mode, and nothing
changes.
"""

from __future__ import annotations

import contextlib
import sqlite3

from nurture.exceptions import NurtureError
from nurture.store.database import SQLITE_PAGE_SIZE, sqlite_file


class VacuumError(NurtureError):
    """The database could not be rewritten; its data is as it was."""


def vacuum_sqlite(url: str, *, page_size: int = SQLITE_PAGE_SIZE) -> tuple[int, int]:
    """Rewrites the SQLite database at ``url`` with ``page_size`` pages; returns the page
    size (bytes) before and after. Raises :class:`VacuumError` when it is missing, in
    use, or cannot be rewritten (VACUUM is all or nothing: the data stays as it was)."""
    path = sqlite_file(url)
    if path is None:
        raise VacuumError(f"no SQLite database at {url}")
    conn = None
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=5)
        before = int(conn.execute("PRAGMA page_size").fetchone()[0])
        # Out of WAL mode first: there VACUUM keeps the page size it has.
        if conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0] != "delete":
            raise VacuumError(_IN_USE)
        try:
            conn.execute(f"PRAGMA page_size={int(page_size)}")
            conn.execute("VACUUM")
        finally:
            _back_to_wal(conn)
        return before, int(conn.execute("PRAGMA page_size").fetchone()[0])
    except sqlite3.Error as exc:
        if "locked" in str(exc):  # another process has it open
            raise VacuumError(_IN_USE) from None
        raise VacuumError(f"the database could not be rewritten: {exc}") from None
    finally:
        if conn is not None:
            conn.close()


def _back_to_wal(conn: sqlite3.Connection) -> None:
    """WAL mode again, whatever happened; if even that fails, the error in hand is the
    one to report: the service turns WAL mode back on when it next opens the file."""
    with contextlib.suppress(sqlite3.Error):
        conn.execute("PRAGMA journal_mode=WAL")


_IN_USE = "the database is in use: stop the service, then run this again"
