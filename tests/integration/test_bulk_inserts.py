"""Batch inserts (store.bulk): each column travels as one parameter, and a batch that
meets rows already there inserts the others, on both backends."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, String, func, select
from sqlalchemy.exc import IntegrityError

from nurture.store import outbox as outbox_ops
from nurture.store.bulk import pg_array_literal, time_text
from nurture.store.schema import outbox
from tests.helpers import NOW, queue_newsletter


def planned(subscriber_id: int, step: str) -> dict[str, object]:
    return {
        "subscriber_id": subscriber_id,
        "kind": "sequence",
        "campaign": "what-i-do",
        "step": step,
        "due_at": NOW,
    }


def test_a_batch_meeting_a_planned_row_inserts_the_others(engine: Engine) -> None:
    """On PostgreSQL the plain INSERT fails on the row already there; its savepoint is
    undone and the batch goes again, skipping that row. Nothing else is lost."""
    queue_newsletter(engine, 3)
    with engine.begin() as conn:
        first = outbox_ops.enqueue_keys(conn, [planned(1, "welcome")], now=NOW)
        assert first == {(1, "what-i-do", "welcome")}
        again = outbox_ops.enqueue_keys(
            conn, [planned(1, "welcome"), planned(2, "welcome"), planned(3, "welcome")], now=NOW
        )
        assert again == {(2, "what-i-do", "welcome"), (3, "what-i-do", "welcome")}
    with engine.begin() as conn:  # the transaction outlived the failed attempt
        assert outbox_ops.enqueue_keys(conn, [planned(1, "second")], now=NOW) == {
            (1, "what-i-do", "second")
        }


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_array_literals_read_back_as_the_values_given(engine: Engine) -> None:
    """Batch inserts send each column as one array literal (store.bulk): quoting,
    escaping and NULLs must read back exactly, whatever a first name holds."""
    # Plain ones go through orjson's text, the others element by element: both read back.
    texts = [None, 'a"b\\c', "", "NULL", "null", " x ", "{,}", "[x]", "é", "NULL, 1", "a\nb\x01"]
    plain = [None, "", "NULL", "null", " x ", "é", "NULL, 1", "it's", "{,}", "[x]", "{"]
    times = [datetime(2026, 1, 2, 3, 4, 5, 6), None]
    with engine.connect() as conn:
        read = conn.exec_driver_sql(
            "SELECT CAST(%(t)s AS text[]), CAST(%(d)s AS timestamp[]),"
            " CAST(%(b)s AS boolean[]), CAST(%(i)s AS bigint[]), CAST(%(p)s AS text[])",
            {
                "t": pg_array_literal(texts),
                "p": pg_array_literal(plain),
                "d": pg_array_literal(times),
                "b": pg_array_literal([True, False, None]),
                "i": pg_array_literal([1, None, 2**40]),
            },
        ).one()
    assert list(read) == [texts, times, [True, False, None], [1, None, 2**40], plain]
    assert pg_array_literal(["plain", None, "é"]) == '{"plain",null,"é"}'  # orjson's
    for other in ([1.5], [float("nan")], [[1]]):  # no float column, no nesting
        with pytest.raises(TypeError):
            pg_array_literal(other)


def test_an_error_other_than_a_conflict_is_not_skipped(engine: Engine) -> None:
    """Only rows already there are skipped: a row breaking another rule (no kind) fails
    the batch loudly on both backends, after PostgreSQL's second try as well."""
    bad = {**planned(1, "welcome"), "kind": None}
    with pytest.raises(IntegrityError), engine.begin() as conn:
        outbox_ops.enqueue_keys(conn, [planned(2, "welcome"), bad], now=NOW)
    with engine.connect() as conn:  # nothing of the batch stayed
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 0


def test_aware_times_never_reach_an_array_literal() -> None:
    """The cast to timestamp[] would drop an offset: times are bound (naive UTC) first."""
    with pytest.raises(ValueError):
        pg_array_literal([NOW])


def test_a_rare_conflict_insert_returns_only_columns_it_was_given(engine: Engine) -> None:
    """Without a conflict the values come from the rows given, so an id PostgreSQL
    makes cannot be asked for."""
    from nurture.store.bulk import insert_ignore_returning

    with pytest.raises(ValueError), engine.begin() as conn:
        insert_ignore_returning(
            conn, outbox, [planned(1, "welcome")], ("subscriber_id",), {}, ("id",),
            conflicts_rare=True,
        )  # fmt: skip


def test_a_batch_stores_times_as_a_core_insert_does(engine: Engine) -> None:
    """On SQLite a batch writes each time's text itself (bulk.time_text): the text must
    be SQLAlchemy's own, or SQL comparing times would disagree; and times read back."""
    queue_newsletter(engine, 1)
    odd = datetime(2027, 3, 28, 2, 30, 0, 5, tzinfo=ZoneInfo("Europe/London"))  # not UTC
    with engine.begin() as conn:
        outbox_ops.enqueue_keys(conn, [{**planned(1, "late"), "due_at": odd}], now=NOW)
        stored = conn.execute(
            select(outbox.c.due_at, func.cast(outbox.c.due_at, String)).where(
                outbox.c.step == "late"
            )
        ).one()
    assert stored[0] == odd
    if engine.dialect.name == "sqlite":
        core = outbox.c.due_at.type.dialect_impl(engine.dialect).bind_processor(engine.dialect)
        assert core is not None
        assert stored[1] == core(odd) == "2027-03-28 01:30:00.000005"
    with pytest.raises(ValueError):
        time_text(datetime(2027, 1, 1))  # naive: refused, as UTCDateTime refuses it
