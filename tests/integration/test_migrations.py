"""The Alembic migrations build exactly the schema the code declares, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from sqlalchemy import Connection, inspect, select

from nurture.store import claims, database
from nurture.store import outbox as outbox_ops
from nurture.store.schema import OUTBOX_FILLFACTOR, metadata, outbox


def test_sqlite_migration_matches_metadata(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    database.upgrade(url)
    engine = database.make_engine(url)
    tables = set(inspect(engine).get_table_names())
    assert {t.name for t in metadata.sorted_tables} <= tables
    uniques = inspect(engine).get_unique_constraints("outbox")
    assert any(set(u["column_names"]) == {"subscriber_id", "step_id"} for u in uniques)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA page_size").scalar() == database.SQLITE_PAGE_SIZE
    engine.dispose()


def test_postgres_migration_matches_metadata(postgres_schema_url: str) -> None:
    engine = database.make_engine(postgres_schema_url)
    tables = set(inspect(engine).get_table_names())
    assert {t.name for t in metadata.sorted_tables} <= tables
    engine.dispose()


def test_rebuilding_the_outbox_on_sqlite_keeps_every_row(tmp_path: Path) -> None:
    """0007 rebuilds the outbox on SQLite (batch mode, to drop its foreign key): no row of
    it, nor of a table that refers to it (a pending sign-up's details), may be lost."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    database.upgrade(url, "0006")
    engine = database.make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO subscribers (id, public_id, email, status, newsletters, created_at)"
            " VALUES (1, 'p1', 'a@example.org', 'pending', 1, '2026-12-01 10:00:00.000000')"
        )
        conn.exec_driver_sql(
            "INSERT INTO outbox (id, subscriber_id, kind, campaign, step, due_at, status,"
            " attempts, created_at, updated_at) VALUES (7, 1, 'confirmation', 'c', 'confirm-1',"
            " '2026-12-01 10:00:00.000000', 'sent', 1, '2026-12-01 10:00:00.000000',"
            " '2026-12-01 10:00:00.000000')"
        )
        conn.exec_driver_sql(
            "INSERT INTO confirmation_details (outbox_id, subscriber_id, first_name, timezone)"
            " VALUES (7, 1, 'Sam', 'Europe/London')"
        )
    engine.dispose()
    database.upgrade(url)
    engine = database.make_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT id FROM outbox").scalars().all() == [7]
        details = conn.exec_driver_sql("SELECT outbox_id, first_name FROM confirmation_details")
        assert details.all() == [(7, "Sam")]
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert not inspect(engine).get_foreign_keys("outbox")
    engine.dispose()


def test_a_batch_sending_during_the_upgrade_gets_its_claim(blank_database_url: str) -> None:
    """0008 finds rows in flight through claims: rows left ``sending`` by a service
    stopped mid-batch get the claim they would have had, so their lease still ends."""
    url = blank_database_url
    database.upgrade(url, "0007")
    engine = database.make_engine(url)
    at = "'2026-12-01 10:00:00'"
    lease = "'2026-12-01 10:05:00'"
    with engine.begin() as conn:
        for row_id, status, worker in (
            (1, "sending", "w:1"),
            (2, "sending", "w:1"),
            (3, "sending", None),
            (4, "sent", "w:0"),
        ):
            old_outbox_row(
                conn,
                row_id,
                status,
                at,
                subscriber_id=str(row_id),
                lease_until=lease,
                worker="NULL" if worker is None else repr(worker),
            )
    engine.dispose()
    database.upgrade(url)
    engine = database.make_engine(url)
    with engine.connect() as conn:
        held = {token: sorted(ids) for token, ids in claims.expired(conn, now=LATER)}
        assert held == {"w:1": [1, 2], "before-0008": [3]}
        assert claims.expired(conn, now=EARLIER) == []
    with engine.begin() as conn:
        assert outbox_ops.expire_leases(conn, now=LATER) == 3
    with engine.connect() as conn:
        found = conn.execute(select(outbox.c.id, outbox.c.status).order_by(outbox.c.id)).all()
        assert [tuple(row) for row in found] == [
            (1, "unknown"),
            (2, "unknown"),
            (3, "unknown"),
            (4, "sent"),
        ]
        assert claims.claimed_ids(conn) == []
    engine.dispose()


EARLIER = datetime(2026, 12, 1, 10, 4, tzinfo=UTC)
LATER = datetime(2026, 12, 1, 10, 6, tzinfo=UTC)


def test_rows_keep_their_place_in_the_queue_across_0009(blank_database_url: str) -> None:
    """0009 re-keys the outbox's partial indexes on generated columns: a queued row is
    still due, an unknown one still awaits evidence, the rest are in neither."""
    url = blank_database_url
    database.upgrade(url, "0008")
    engine = database.make_engine(url)
    at = "'2026-12-01 10:00:00.000000'"
    with engine.begin() as conn:
        for row_id, status in ((1, "queued"), (2, "unknown"), (3, "sent"), (4, "cancelled")):
            old_outbox_row(conn, row_id, status, at, step=f"'n{row_id}'")
    engine.dispose()
    database.upgrade(url)
    engine = database.make_engine(url)
    with engine.begin() as conn:
        assert [row.id for row in outbox_ops.take(conn, now=EARLIER, limit=10)] == [1]
        assert [row.id for row in outbox_ops.unknown_rows(conn, before=EARLIER)] == [2]
        if conn.dialect.name == "postgresql":
            options = conn.exec_driver_sql(
                "SELECT reloptions FROM pg_class WHERE oid = 'outbox'::regclass"
            ).scalar_one()
            assert options == [f"fillfactor={OUTBOX_FILLFACTOR}"]
    engine.dispose()
    # A rollback of the code needs the schema back as 0008 had it, and then forward again.
    command.downgrade(database.alembic_config(url), "0008")
    engine = database.make_engine(url)
    indexes = {ix["name"] for ix in inspect(engine).get_indexes("outbox")}
    assert {"ix_outbox_queued_due", "ix_outbox_unknown"} <= indexes
    assert "queued_due" not in {c["name"] for c in inspect(engine).get_columns("outbox")}
    engine.dispose()
    database.upgrade(url)
    engine = database.make_engine(url)
    with engine.begin() as conn:
        assert [row.id for row in outbox_ops.take(conn, now=EARLIER, limit=10)] == [1]
    engine.dispose()


def old_outbox_row(conn: Connection, row_id: int, status: str, at: str, **columns: str) -> None:
    """An outbox row as an older schema stored it: a newsletter, with ``columns`` (SQL
    literals) added or replacing the defaults."""
    values = {
        "id": str(row_id),
        "subscriber_id": "NULL",
        "kind": "'newsletter'",
        "campaign": "'newsletters'",
        "step": "'n'",
        "due_at": at,
        "status": f"'{status}'",
        "attempts": "1",
        "created_at": at,
        "updated_at": at,
        **columns,
    }
    conn.exec_driver_sql(
        f"INSERT INTO outbox ({', '.join(values)}) VALUES ({', '.join(values.values())})"
    )


def test_0010_names_each_step_by_one_id_and_keeps_every_row(blank_database_url: str) -> None:
    """0010 gives each (campaign, step) in the outbox an id and every row its step's id;
    no row is lost (nor a pending sign-up's details, on SQLite's copied table), and the
    unique key still refuses a second row of the same step for the same person."""
    url = blank_database_url
    database.upgrade(url, "0009")
    engine = database.make_engine(url)
    at = "'2026-12-01 10:00:00.000000'"
    rows = {  # id: (subscriber, campaign, step)
        1: ("1", "what-i-do", "welcome"),
        2: ("1", "what-i-do", "second"),
        3: ("2", "what-i-do", "welcome"),
        4: ("NULL", "newsletters", "winter"),  # an erased subscriber's
        5: ("2", "confirmations", "confirm-1"),
    }
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO subscribers (id, public_id, email, status, newsletters, created_at)"
            f" VALUES (2, 'p2', 'b@example.org', 'pending', true, {at})"
        )
        for row_id, (who, campaign, step) in rows.items():
            names = {"campaign": f"'{campaign}'", "step": f"'{step}'"}
            old_outbox_row(conn, row_id, "sent", at, subscriber_id=who, **names)
        conn.exec_driver_sql(
            "INSERT INTO confirmation_details (outbox_id, subscriber_id, first_name)"
            " VALUES (5, 2, 'Sam')"
        )
        if conn.dialect.name == "postgresql":  # the ids above were given, not drawn
            conn.exec_driver_sql("SELECT setval('outbox_id_seq', 100)")
    engine.dispose()
    database.upgrade(url)
    engine = database.make_engine(url)
    with engine.begin() as conn:
        found = conn.exec_driver_sql(
            "SELECT o.id, s.campaign, s.step FROM outbox o JOIN outbox_steps s"
            " ON s.id = o.step_id ORDER BY o.id"
        ).all()
        assert [tuple(r) for r in found] == [(i, c, s) for i, (_, c, s) in rows.items()]
        assert conn.exec_driver_sql("SELECT count(*) FROM outbox_steps").scalar_one() == 4
        details = conn.exec_driver_sql("SELECT outbox_id, first_name FROM confirmation_details")
        assert [tuple(r) for r in details] == [(5, "Sam")]
        planned = {"subscriber_id": 1, "kind": "sequence", "campaign": "what-i-do"}
        planned |= {"due_at": EARLIER, "expires_at": None}
        assert outbox_ops.enqueue(conn, [{**planned, "step": "welcome"}], now=EARLIER) == 0
        assert outbox_ops.enqueue(conn, [{**planned, "step": "third"}], now=EARLIER) == 1
    engine.dispose()
    command.downgrade(database.alembic_config(url), "0009")
    engine = database.make_engine(url)
    uniques = inspect(engine).get_unique_constraints("outbox")
    assert any(set(u["column_names"]) == {"subscriber_id", "campaign", "step"} for u in uniques)
    assert "outbox_steps" not in inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM outbox").scalar_one() == 6
    engine.dispose()
    database.upgrade(url)
    engine = database.make_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM outbox_steps").scalar_one() == 5
    engine.dispose()
