"""Engines and migrations.

SQLite runs in WAL mode with a busy timeout, so the web half and the scheduler half
of one process (or a CLI command beside the service) can share the file. PostgreSQL
is reached through ``DATABASE_URL``; plain ``postgresql://`` URLs use psycopg 3.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).parent / "migrations"
READ_ONLY = "nurture_read_only"
_WRITER = "nurture_sqlite_writer"


def _release(conn: Any) -> None:
    """Ends this connection's turn as the process's SQLite writer, if it had one."""
    lock = conn.info.pop(_WRITER, None)
    if lock is not None:
        lock.release()


def normalise_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` -> the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def sqlite_file(url: str) -> Path | None:
    """The file of the SQLite database at ``url``, when it exists (not in memory)."""
    name = make_url(normalise_url(url)).database
    if not name or name == ":memory:" or not Path(name).exists():
        return None
    return Path(name)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Creates the engine; for SQLite, makes the folder and turns on WAL and foreign keys."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            path = Path(parsed.database)
            path.parent.mkdir(parents=True, exist_ok=True)
            # Created owner-only before SQLite opens it: it holds addresses and names.
            # SQLite gives its -wal and -shm files the same mode.
            path.touch(mode=0o600, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, decide when transactions begin, so that
            # BEGIN IMMEDIATE below takes the write lock up front (no upgrade deadlocks).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            # Only a new (empty) database takes it; `nurture db vacuum` converts an old
            # one. 16 KiB pages: an outbox row is rewritten twice on its way out, and
            # with its indexes that was 20-30% faster than SQLite's 4 KiB default
            # (benchmarks/bookkeeping.py).
            cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        # The writers of this process queue here for SQLite's write lock. Waiting in
        # SQLite's busy handler means sleeping 1 to 100 ms between tries, so eight
        # sign-ups and their confirmations would spend more time asleep than writing;
        # a lock hands the turn over at once. Other processes still meet at the file.
        writers = threading.Lock()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # Writers take the write lock up front (BEGIN IMMEDIATE); readers opened
            # with reading() neither wait for it nor hold it.
            # Straight to the driver: exec_driver_sql's execution context cost more
            # than the BEGIN itself, and every sign-up begins three transactions. (A
            # failure here, "database is locked" after busy_timeout, then arrives as
            # sqlite3's error rather than SQLAlchemy's wrapper; handlers catch both.)
            driver = conn.connection.driver_connection
            if conn.get_execution_options().get(READ_ONLY, False):
                driver.execute("BEGIN")
                return
            # Bounded like busy_timeout: a thread that nests two writing transactions
            # waits for itself, then meets SQLite's own timeout as it did before.
            if writers.acquire(timeout=30):
                conn.info[_WRITER] = writers
            try:
                driver.execute("BEGIN IMMEDIATE")
            except BaseException:
                _release(conn)
                raise

        event.listen(engine, "commit", _release)
        event.listen(engine, "rollback", _release)
        # A connection dropped without either (garbage collected) still hands its turn
        # back when the pool takes it in: conn.info above is this record's info.
        event.listen(engine.pool, "checkin", lambda _dbapi, record: _release(record))
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # No server-side prepared statements: after five runs psycopg would switch to them,
    # and PostgreSQL's generic plan for "id = ANY($1)" (an array of unknown length)
    # is a sequential scan of the outbox, where the custom plan is an index lookup.
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("prepare_threshold", None)
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _timeouts(dbapi_conn: Any, _record: Any) -> None:
        # A process frozen (or half-dead) inside a transaction would hold its row locks
        # for ever, and every other dispatcher and planner would wait on it. Its session
        # ends after a minute idle in a transaction: its work rolls back (nothing it
        # had not committed counted anyway) and the locks are free. Our transactions do
        # no waiting of their own: the provider request happens outside them.
        with dbapi_conn.cursor() as cur:
            cur.execute(f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}")
        dbapi_conn.commit()

    return engine


#: The page size of a new SQLite database (bytes).
SQLITE_PAGE_SIZE = 16384

#: How long a PostgreSQL session may sit idle inside a transaction (milliseconds).
IDLE_IN_TRANSACTION_MS = 60_000


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for reads only (health, metrics, stats).

    On SQLite every other transaction begins with ``BEGIN IMMEDIATE``, which waits for
    and then holds the single write lock; a reader has no need of it.
    """
    with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        yield conn


def ping(conn: Connection) -> None:
    """Raises unless the database answers a trivial query."""
    conn.execute(text("select 1"))


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Applies the migrations up to ``revision`` (``nurture db upgrade``; ``serve`` on start)."""
    command.upgrade(alembic_config(url), revision)
