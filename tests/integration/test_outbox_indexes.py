"""The outbox's indexes do what schema.outbox says: the queries of the hot path and of
housekeeping read their partial index (never a scan of every row ever sent), and on
PostgreSQL a row's "sent" mark touches no index at all (a HOT update)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event

from nurture.store import outbox as outbox_ops
from nurture.store import outbox_sql
from nurture.store.schema import outbox, subscribers
from tests.helpers import NOW, queue_newsletter, statuses


@contextmanager
def explained(conn: Connection) -> Iterator[None]:
    """Every statement ``conn`` runs meanwhile returns its query plan instead of rows.
    PostgreSQL is told to avoid scanning whole tables, so a plan without the index
    means that the index cannot serve the query."""
    prefix = "EXPLAIN " if conn.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")

    def rewrite(*args: Any) -> tuple[str, Any]:
        statement, parameters = args[2], args[3]
        return prefix + statement, parameters

    event.listen(conn, "before_cursor_execute", rewrite, retval=True)
    try:
        yield
    finally:
        event.remove(conn, "before_cursor_execute", rewrite)


def plan_text(rows: Iterable[Any]) -> str:
    return "\n".join(str(row[-1]) for row in rows)


def test_taking_due_rows_reads_the_queue_index(engine: Engine) -> None:
    queue_newsletter(engine, 3)
    params = {"now": NOW, "stale_before": NOW, "limit": 10, "links_key": "", "links_since": NOW}
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":  # take runs through the driver there
            sql, arguments = outbox_sql.take_on_driver(conn.dialect, False, params)
            driver = conn.connection.driver_connection
            assert driver is not None
            plan = plan_text(driver.execute("EXPLAIN QUERY PLAN " + sql, arguments))
        else:
            with explained(conn):
                plan = plan_text(conn.execute(outbox_sql.take("postgresql", False), params))
    assert "ix_outbox_queue" in plan, plan


def test_unknown_rows_are_read_through_their_index(engine: Engine) -> None:
    with engine.begin() as conn, explained(conn):
        plan = plan_text(outbox_ops.unknown_rows(conn, before=NOW))
    assert "ix_outbox_unknown" in plan, plan


def test_the_generated_keys_follow_the_status(engine: Engine) -> None:
    """queued_due is due_at only while queued; unknown_since is set only while unknown."""
    queue_newsletter(engine, 2)
    lease = timedelta(minutes=5)
    with engine.begin() as conn:
        ids = [row.id for row in outbox_ops.take(conn, now=NOW, limit=2)]
        assert len(ids) == 2
        outbox_ops.start_sending(conn, ids, token="w:1", now=NOW, lease=lease)
    with engine.begin() as conn:
        assert outbox_ops.take(conn, now=NOW, limit=10) == []  # in flight: out of the queue
        outbox_ops.expire_leases(conn, now=NOW + lease * 2)
        found = outbox_ops.unknown_rows(conn, before=NOW + lease * 2)
        assert sorted(row.id for row in found) == sorted(ids)
        outbox_ops.requeue(
            conn, {ids[0]: NOW + lease}, now=NOW + lease * 2, expect="unknown"
        )  # back in the queue, at its new time
        assert [r.id for r in outbox_ops.take(conn, now=NOW + lease * 3, limit=10)] == [ids[0]]
        assert [r.id for r in outbox_ops.unknown_rows(conn, before=NOW + lease * 3)] == [ids[1]]
    assert statuses(engine) == {"queued": 1, "unknown": 1}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_sent_mark_is_a_hot_update_on_postgresql(engine: Engine) -> None:
    """No index holds a column the "sent" mark changes, and the pages have room
    (schema.OUTBOX_FILLFACTOR): PostgreSQL rewrites each row in place, every index
    untouched. An index on ``status`` (or a full page) would make this 0."""
    queue_newsletter(engine, 20)
    with engine.begin() as conn:
        ids = [row.id for row in outbox_ops.take(conn, now=NOW, limit=20)]
        outbox_ops.start_sending(conn, ids, token="w:1", now=NOW, lease=timedelta(minutes=5))
    with engine.begin() as conn:
        assert outbox_ops.mark_group_sent(conn, ids, message_id="m-1", now=NOW) == 20
        hot = conn.exec_driver_sql(
            "SELECT pg_stat_get_xact_tuples_hot_updated('outbox'::regclass)"
        ).scalar_one()
    assert hot == 20


def test_taking_gives_the_oldest_rows_first_with_their_subscriber(engine: Engine) -> None:
    """The rows taken are the ``limit`` oldest by due time, then id, in that order, and
    carry their subscriber's details as stored (SQLite reads them as one JSON text)."""
    queue_newsletter(engine, 6)
    earlier = {1: timedelta(minutes=-3), 3: timedelta(minutes=-9), 4: timedelta(minutes=-3)}
    with engine.begin() as conn:
        ids = [row.id for row in outbox_ops.take(conn, now=NOW, limit=10)]
        for position, shift in earlier.items():
            conn.execute(
                outbox.update().where(outbox.c.id == ids[position]).values(due_at=NOW + shift)
            )
        conn.execute(
            subscribers.update()
            .where(subscribers.c.email == "reader3@example.org")
            .values(first_name='Zoë "Z" \\ Ñ', paused_until=NOW + timedelta(days=2))
        )
    with engine.begin() as conn:
        taken = outbox_ops.take(conn, now=NOW, limit=4)
    assert [row.id for row in taken] == [ids[3], ids[1], ids[4], ids[0]]
    first = taken[0]
    assert (first.kind, first.campaign, first.email) == (
        "newsletter",
        "newsletters",
        "reader3@example.org",
    )
    assert first.first_name == 'Zoë "Z" \\ Ñ'
    assert first.paused_until == NOW + timedelta(days=2)
    assert (first.attempts, bool(first.expired), bool(first.newsletters)) == (0, False, True)
    assert taken[1].paused_until is None
