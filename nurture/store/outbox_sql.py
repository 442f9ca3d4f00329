"""The outbox statements every batch runs, built once per dialect.

Building a Core statement and computing its cache key costs more than SQLite takes to
run it for the single row of a sign-up's confirmation, so the statements of taking,
marking ``sending`` and marking ``sent`` are built once, with every value a parameter:
``ids`` (see :func:`nurture.store.bulk.id_list`), ``now`` and their own.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from contextlib import closing
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Connection,
    Integer,
    String,
    and_,
    any_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.types import NullType

from nurture.store.schema import outbox, subscribers
from nurture.store.statuses import OutboxStatus

_QUEUED = text("outbox.status = 'queued'")
# Literal, not an expanding IN: that is rendered afresh at every execution.
_NOT_FINAL = text("outbox.status IN ('sending', 'unknown', 'queued')")
_NOW = bindparam("now", type_=outbox.c.due_at.type)
_LINKS_SINCE = bindparam("links_since", type_=subscribers.c.links_signed_at.type)


#: The ``ids`` parameter on PostgreSQL: one text literal, cast by the server.
PG_IDS = cast(bindparam("ids", type_=String), ARRAY(BigInteger))


def _among_ids(dialect: str) -> Any:
    """``outbox.id`` is one of parameter ``ids`` (one parameter, however many ids)."""
    if dialect == "postgresql":
        return outbox.c.id == any_(PG_IDS)
    each = func.json_each(bindparam("ids", type_=String))
    return outbox.c.id.in_(select(literal_column("value")).select_from(each).scalar_subquery())


@functools.cache
def take(dialect: str, only: bool) -> Any:
    """Due rows with their subscriber; parameters ``now``, ``stale_before``, ``limit``,
    ``links_key``, ``links_since`` (and ``ids`` when ``only``)."""
    stale_before = bindparam("stale_before", type_=outbox.c.created_at.type)
    query = (
        select(
            outbox.c.id,
            outbox.c.subscriber_id,
            outbox.c.kind,
            outbox.c.campaign,
            outbox.c.step,
            outbox.c.attempts,
            # Times compared here, not in Python: three fewer conversions per row, on
            # the path every email of a million-recipient newsletter takes.
            and_(outbox.c.expires_at.is_not(None), outbox.c.expires_at <= _NOW),
            subscribers.c.email,
            subscribers.c.public_id,
            subscribers.c.first_name,
            subscribers.c.timezone,
            subscribers.c.status,
            # Untyped: the type's conversion would run for every row, and nearly every
            # value is NULL; outbox.take converts the few that are not.
            type_coerce(
                case((subscribers.c.paused_until > _NOW, subscribers.c.paused_until), else_=None),
                NullType(),
            ),
            subscribers.c.newsletters,
            outbox.c.created_at <= stale_before,
            # The links signed ahead of time, when still good to use (mail.tokens).
            case(
                (
                    and_(
                        subscribers.c.links_key == bindparam("links_key", type_=String),
                        subscribers.c.links_signed_at >= _LINKS_SINCE,
                    ),
                    subscribers.c.link_tokens,
                ),
                else_=None,
            ),
        )
        .select_from(outbox.outerjoin(subscribers, subscribers.c.id == outbox.c.subscriber_id))
        .where(outbox.c.queued_due <= _NOW)  # the queue's index (schema.outbox)
        .order_by(outbox.c.queued_due, outbox.c.id)
        .limit(bindparam("limit", type_=Integer))
    )
    if only:
        query = query.where(_among_ids(dialect))
    if dialect == "postgresql":
        return query.with_for_update(skip_locked=True, of=outbox)
    return _as_one_json_array(query)


def _as_one_json_array(query: Any) -> Any:
    """SQLite: the rows as one JSON array of arrays, in one row.

    sqlite3 lets go of the GIL for every row it steps to, and takes it back after; while
    the other dispatch thread runs Python, each of those thousand takings-back waits
    for that thread to yield it. Measured on 200k rows: alone, both ways take the same
    4.5-5.4 us a row; beside a thread running plain Python, rows one by one took
    4.7-6.8 *ms* a row, and the one JSON text 17-19 us. benchmarks.bookkeeping's take
    of 200k went from 1.18-1.26 to 0.83-0.95 s. The rows keep the inner query's order:
    SQLite feeds an aggregate from a subquery with ORDER BY and LIMIT row by row, in
    that order (tests/integration/test_outbox_indexes.py holds it to oldest first).
    """
    rows = query.with_only_columns(func.json_array(*query.selected_columns).label("row"))
    # Each row's JSON text, joined: json_group_array would quote them as strings (a
    # value loses its JSON subtype on leaving the subquery). No rows: "[]".
    joined = literal_column("'['", String).concat(func.group_concat(rows.subquery().c.row))
    return select(func.coalesce(joined.concat(literal_column("']'", String)), "[]"))


def take_rows(conn: Connection, only: bool, params: dict[str, Any]) -> list[Sequence[Any]]:
    """The rows :func:`take` selects, straight through the driver (see
    :func:`take_on_driver`), as plain sequences in its column order."""
    text, arguments = take_on_driver(conn.dialect, only, params)
    driver = conn.connection.driver_connection
    assert driver is not None
    with closing(driver.cursor()) as cursor:
        found = cursor.execute(text, arguments).fetchall()
    if conn.dialect.name == "sqlite":  # one row: the rows as one JSON array
        return orjson.loads(found[0][0])  # type: ignore[no-any-return]
    return found


def take_on_driver(dialect: Dialect, only: bool, params: dict[str, Any]) -> tuple[str, Any]:
    """:func:`take` as SQL text and its arguments in the driver's own style (a list for
    sqlite3, a dict for psycopg), for the DB-API cursor.

    The rows come back with no conversion (plain tuples from psycopg; on SQLite one JSON
    text of arrays): the few times in them are converted by ``outbox.take``, and the
    flags are read for their truth (0 and 1 on SQLite). A thousand rows through
    SQLAlchemy's result handling cost more than SQLite took to run the query, and a
    millisecond a batch on PostgreSQL.
    """
    key = (dialect.name, only)
    compiled = _COMPILED_TAKES.get(key)
    if compiled is None:  # once per process and dialect: every engine compiles it alike
        compiled = _COMPILED_TAKES[key] = _compiled_take(dialect, only)
    text, names, convert, constants = compiled
    values = {**constants, **params}
    if dialect.positional:
        return text, [convert[name](values[name]) for name in names]
    return text, {name: convert[name](values[name]) for name in names}


_Compiled = tuple[str, tuple[str, ...], dict[str, Any], dict[str, Any]]
_COMPILED_TAKES: dict[tuple[str, bool], _Compiled] = {}


def _compiled_take(dialect: Dialect, only: bool) -> _Compiled:
    compiled = take(dialect.name, only).compile(dialect=dialect)
    # The statement's own constants (its OFFSET 0) are the parameters not passed in.
    passed = dict.fromkeys(("now", "stale_before", "limit", "ids", "links_key", "links_since"))
    every = compiled.construct_params(passed)
    names = tuple(compiled.positiontup or ()) if dialect.positional else tuple(every)
    convert = {}
    for name in names:
        processor = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
        convert[name] = processor or _same
    constants = {k: v for k, v in every.items() if k not in passed}
    return compiled.string, names, convert, constants


def _same(value: Any) -> Any:
    return value


@functools.cache
def start_sending(dialect: str) -> Any:
    """Rows taken are ``sending``; parameters ``ids``, ``token``, ``lease``, ``now``."""
    return (
        update(outbox)
        .where(_among_ids(dialect), _QUEUED)
        .values(
            status=OutboxStatus.SENDING,
            worker=bindparam("token", type_=outbox.c.worker.type),
            lease_until=bindparam("lease", type_=outbox.c.lease_until.type),
            attempts=outbox.c.attempts + 1,
            updated_at=_NOW,
        )
    )


@functools.cache
def mark_group_sent(dialect: str) -> Any:
    """Rows not final yet are ``sent``; parameters ``ids``, ``message_id``, ``now``."""
    return (
        update(outbox)
        .where(_among_ids(dialect), _NOT_FINAL)
        .values(
            status=OutboxStatus.SENT,
            provider_message_id=bindparam("message_id", type_=outbox.c.provider_message_id.type),
            sent_at=_NOW,
            lease_until=None,
            error=None,
            updated_at=_NOW,
        )
    )
