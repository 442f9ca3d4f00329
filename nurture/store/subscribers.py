"""Named operations on the subscribers table: find, create, change, remove, export.

The subscriber path (sign-up, confirm, unsubscribe, preferences, erasure) changes one
person at a time; these operations take a connection inside the caller's transaction
so that each change is applied whole or not at all. Their enrolments are written by
``store.enrolments``, their outbox rows by ``store.subscriber_outbox``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, delete, func, select, update

from nurture.store import folding
from nurture.store.schema import consents, enrolments, outbox, subscribers
from nurture.store.upsert import insert_ignore, insert_ignore_returning_row


@functools.cache
def _lookup(dialect: str, key: str, for_update: bool) -> Any:
    """The subscriber whose ``key`` column equals parameter ``value``; built once.

    A sign-up looks an address up twice: building the statement each time cost four
    times what SQLite takes to run it.
    """
    query = select(subscribers).where(subscribers.c[key] == bindparam("value"))
    # SQLite serialises writers with BEGIN IMMEDIATE already; PostgreSQL needs the lock.
    if for_update and dialect == "postgresql":
        query = query.with_for_update()
    return query


def _by(conn: Connection, key: str, value: object, for_update: bool) -> Row[Any] | None:
    query = _lookup(conn.dialect.name, key, for_update)
    return conn.execute(query, {"value": value}).first()


def by_email(conn: Connection, email: str, *, for_update: bool = False) -> Row[Any] | None:
    """The subscriber with this (normalised) address, or ``None``."""
    return _by(conn, "email", email, for_update)


def by_public_id(conn: Connection, public_id: str, *, for_update: bool = False) -> Row[Any] | None:
    """The subscriber a token names, or ``None`` (erased, or never existed)."""
    return _by(conn, "public_id", public_id, for_update)


def by_id(conn: Connection, subscriber_id: int, *, for_update: bool = False) -> Row[Any] | None:
    """The subscriber with this id, or ``None`` (erased)."""
    return _by(conn, "id", subscriber_id, for_update)


def emails_of(conn: Connection, ids: Sequence[int]) -> dict[int, str]:
    """``{id: email}`` of those of ``ids`` that exist: one query for a batch."""
    query = select(subscribers.c.id, subscribers.c.email).where(subscribers.c.id.in_(ids))
    return {row.id: row.email for row in conn.execute(query)}


def create(conn: Connection, values: dict[str, Any]) -> Row[Any] | None:
    """Inserts a subscriber and returns it as :func:`by_email` reads it (locked until
    the transaction ends, as a row just inserted is); ``None`` when the address exists
    already (a concurrent sign-up)."""
    return conn.execute(insert_ignore_returning_row(conn, subscribers), values).first()


def create_many(conn: Connection, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Inserts subscribers, skipping known addresses; returns ``{email: id}`` of the new ones."""
    if not rows:
        return {}
    result = conn.execute(
        insert_ignore(conn, subscribers).returning(
            subscribers.c.id, subscribers.c.email, sort_by_parameter_order=True
        ),
        list(rows),
    )
    return {row.email: row.id for row in result}


def existing_emails(conn: Connection, emails: Sequence[str]) -> set[str]:
    """Which of ``emails`` are subscribers already: one query for a batch."""
    if not emails:
        return set()
    return set(
        conn.execute(select(subscribers.c.email).where(subscribers.c.email.in_(emails))).scalars()
    )


def change(conn: Connection, subscriber_id: int, **values: Any) -> None:
    """Updates columns of one subscriber."""
    # Plain values only, given with the execution: a name that is not a column would be
    # ignored there without a word, so it is refused here.
    unknown = values.keys() - subscribers.c.keys()
    if unknown:
        raise ValueError(f"not columns of subscribers: {sorted(unknown)}")
    if values:
        conn.execute(_CHANGE, {"subscriber": subscriber_id, **values})


# The columns to set come with each execution, named as the columns are.
_CHANGE = update(subscribers).where(subscribers.c.id == bindparam("subscriber"))


def remove(conn: Connection, subscriber_id: int) -> None:
    """Deletes the row: enrolments go with it; outbox rows and consents keep a NULL id.

    The sequences the person left are folded into counts first, so the funnel's
    "stopped after" numbers survive the erasure (:func:`folding.fold_stops`).
    """
    folding.fold_stops(conn, subscriber_id)
    # The outbox has no foreign key to do this (see schema.outbox): its rows keep their
    # counts for the statistics, and no id that SQLite could give a new subscriber.
    conn.execute(
        update(outbox).where(outbox.c.subscriber_id == subscriber_id).values(subscriber_id=None)
    )
    conn.execute(delete(subscribers).where(subscribers.c.id == subscriber_id))


def stream_all(conn: Connection, *, chunk: int = 1000) -> Iterator[Row[Any]]:
    """Every subscriber in id order, fetched ``chunk`` rows at a time (constant memory)."""
    result = conn.execution_options(stream_results=True, yield_per=chunk).execute(
        select(subscribers).order_by(subscribers.c.id)
    )
    yield from result


def stream_for_export(conn: Connection, *, chunk: int = 1000) -> Iterator[Row[Any]]:
    """Every subscriber in id order with what an export needs beside the row itself.

    ``consent_action``, ``consent_channel``, ``consent_form_url``, ``consent_detail``
    and ``consent_at``: the first record of the consent they gave (``opt_in`` or
    ``import``), ``None`` when there is none; ``sequence_status`` and
    ``sequence_next_step``: their enrolment in ``source_campaign``, if any.
    """
    given = consents.alias("given")
    first = (
        select(func.min(given.c.id))
        .where(given.c.subscriber_id == subscribers.c.id, given.c.action.in_(("opt_in", "import")))
        .correlate(subscribers)
        .scalar_subquery()
    )
    query = (
        select(
            subscribers,
            consents.c.action.label("consent_action"),
            consents.c.channel.label("consent_channel"),
            consents.c.form_url.label("consent_form_url"),
            consents.c.detail.label("consent_detail"),
            consents.c.created_at.label("consent_at"),
            enrolments.c.status.label("sequence_status"),
            enrolments.c.next_step.label("sequence_next_step"),
        )
        .select_from(
            subscribers.outerjoin(consents, consents.c.id == first).outerjoin(
                enrolments,
                and_(
                    enrolments.c.subscriber_id == subscribers.c.id,
                    enrolments.c.campaign == subscribers.c.source_campaign,
                ),
            )
        )
        .order_by(subscribers.c.id)
    )
    yield from conn.execution_options(stream_results=True, yield_per=chunk).execute(query)
