"""``nurture db backup``: a consistent copy of the live database.

SQLite is copied through its online backup API (``sqlite3.Connection.backup``): page
by page, while the service keeps reading and writing (WAL mode), and the copy is one
consistent state of the database, never a half-written one. The copy is written beside
its target and renamed into place only once it has been opened again and its schema
version read, so PATH never holds a broken backup. PostgreSQL has ``pg_dump`` for this;
the command is printed for the operator to run (or to put in a timer).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url

from nurture.exceptions import NurtureError
from nurture.store.database import normalise_url, sqlite_file


class BackupError(NurtureError):
    """The backup could not be made or did not verify."""


def is_sqlite_url(url: str) -> bool:
    return make_url(normalise_url(url)).get_backend_name() == "sqlite"


def backup_sqlite(url: str, path: Path) -> str:
    """Copies the SQLite database at ``url`` to ``path``; returns the copy's schema version.

    Raises :class:`BackupError` when the source is missing, the copy cannot be written,
    or the copy does not open with an Alembic version (nothing is left at ``path`` then).
    """
    source_path = sqlite_file(url)
    if source_path is None:
        raise BackupError(f"no SQLite database at {url}")
    path = Path(path)
    if path.resolve() == Path(source_path).resolve():
        raise BackupError("the backup must not overwrite the database itself")
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)
        # Owner-only from the start: the copy holds addresses and names.
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        with (
            contextlib.closing(sqlite3.connect(source_path, timeout=30)) as src,
            contextlib.closing(sqlite3.connect(partial)) as dst,
        ):
            # In one step: under WAL a reader never blocks the service's writers, and
            # a copy made in steps starts over whenever one of them writes.
            src.backup(dst)
            # A standalone file: no -wal beside it to lose on the way to storage.
            dst.execute("PRAGMA journal_mode=DELETE")
        revision = schema_version(partial)
        os.replace(partial, path)
    except (OSError, sqlite3.Error) as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"backup to {path} failed: {exc}") from None
    except BackupError:
        partial.unlink(missing_ok=True)
        raise
    return revision


def schema_version(path: Path) -> str:
    """The Alembic revision of the SQLite file at ``path``, after an integrity check.

    Raises :class:`BackupError` when the file is damaged or holds no version.
    """
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        verdict = conn.execute("PRAGMA quick_check").fetchone()
        if not verdict or verdict[0] != "ok":
            raise BackupError(f"{path}: the copy is damaged ({verdict})")
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error:
            row = None
    if not row:
        raise BackupError(f"{path}: no schema version in the copy (not a nurture database?)")
    return str(row[0])


def _pg_arguments(url: str) -> list[str]:
    parsed = make_url(normalise_url(url))
    args = []
    if parsed.host:
        args += ["-h", parsed.host]
    if parsed.port:
        args += ["-p", str(parsed.port)]
    if parsed.username:
        args += ["-U", parsed.username]
    # The password is never printed: pg_dump reads ~/.pgpass or PGPASSWORD.
    return [*args, "-d", parsed.database or ""]


def pg_dump_command(url: str, path: Path) -> str:
    """The ``pg_dump`` command that backs up the database at ``url`` to ``path``."""
    return shlex.join(["pg_dump", "--format=custom", *_pg_arguments(url), "-f", str(path)])


def pg_restore_command(url: str, path: Path) -> str:
    """The ``pg_restore`` command that loads ``path`` back into the database at ``url``."""
    return shlex.join(["pg_restore", "--clean", "--if-exists", *_pg_arguments(url), str(path)])
