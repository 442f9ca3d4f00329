"""Named SQL for newsletter planning: the audience, ``newsletter_runs``, INSERT ... SELECT,
and the reads behind ``tick --dry-run`` (:func:`due_preview`, :func:`audience_size`).

A newsletter's recipients are never loaded into memory: the database copies them into
the outbox chunk by chunk of subscriber ids (:func:`insert_newsletter_rows`), and the
``newsletter_runs`` row is both the lock and the cursor of that walk (see
:mod:`nurture.delivery.planning`, which decides the chunks and the due times).

These statements are on the path of a million-recipient newsletter (``make bench``):
change them only with the benchmark in hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError

from nurture.store.schema import newsletter_runs, outbox, subscribers
from nurture.store.statuses import OutboxKind, OutboxStatus, SubscriberStatus
from nurture.store.upsert import insert_ignore

_COLUMNS = (
    "subscriber_id", "kind", "campaign", "step", "step_id", "due_at", "expires_at", "status",
    "attempts", "created_at", "updated_at",
)  # fmt: skip


def _audience(send_at: datetime) -> Any:
    """Confirmed subscribers who want newsletters and had confirmed by ``send_at``."""
    return and_(
        subscribers.c.status == SubscriberStatus.CONFIRMED,
        subscribers.c.newsletters == true(),
        subscribers.c.confirmed_at <= send_at,
    )


def _chunk(send_at: datetime, first: int, last: int) -> Any:
    """The audience with subscriber ids in (first, last]."""
    return and_(_audience(send_at), subscribers.c.id > first, subscribers.c.id <= last)


def audience_size(conn: Connection, *, send_at: datetime) -> int:
    """How many subscribers a newsletter sent at ``send_at`` would reach."""
    return int(conn.execute(select(func.count()).where(_audience(send_at))).scalar_one())


def due_preview(conn: Connection, *, now: datetime, limit: int = 50) -> list[Any]:
    """Queued rows due by ``now`` (for ``tick --dry-run``), with the subscriber's address."""
    return list(
        conn.execute(
            select(
                outbox.c.id,
                outbox.c.kind,
                outbox.c.campaign,
                outbox.c.step,
                outbox.c.due_at,
                subscribers.c.email,
            )
            .select_from(outbox.outerjoin(subscribers, subscribers.c.id == outbox.c.subscriber_id))
            .where(outbox.c.queued_due <= now)  # the queue's index (schema.outbox)
            .order_by(outbox.c.queued_due, outbox.c.id)
            .limit(limit)
        )
    )


# The run: lock and cursor ---------------------------------------------------------


def start_run(conn: Connection, slug: str, *, now: datetime) -> None:
    """Creates the newsletter's run row (cursor 0) unless it exists already."""
    conn.execute(
        insert_ignore(conn, newsletter_runs).values(
            slug=slug, planned_at=now, recipients=0, cursor=0, done=False
        )
    )


def lock_run(conn: Connection, slug: str) -> Any:
    """The run's ``cursor`` and ``done``, locked for this transaction (one planner at a time)."""
    return conn.execute(
        select(newsletter_runs.c.cursor, newsletter_runs.c.done)
        .where(newsletter_runs.c.slug == slug)
        .with_for_update()
    ).one()


def chunk_end(conn: Connection, *, send_at: datetime, after: int, size: int) -> int | None:
    """The last subscriber id of the next chunk after id ``after``: ``size`` ids from
    the first member of the audience past it, so at most ``size`` subscribers and at
    least one; ``None`` when none is left.

    Counting ``size`` members instead would read every one of them (their status and
    dates) once more than the INSERT does: a third of PostgreSQL's planning time."""
    first = conn.execute(
        select(func.min(subscribers.c.id)).where(_audience(send_at), subscribers.c.id > after)
    ).scalar()
    return None if first is None else int(first) + size - 1


def finish_run(conn: Connection, slug: str) -> None:
    """The whole audience is planned: later passes skip this newsletter."""
    conn.execute(newsletter_runs.update().where(newsletter_runs.c.slug == slug).values(done=True))


def advance_run(conn: Connection, slug: str, *, cursor: int, added: int) -> None:
    """Moves the cursor past a planned chunk and counts its rows."""
    conn.execute(
        newsletter_runs.update()
        .where(newsletter_runs.c.slug == slug)
        .values(cursor=cursor, recipients=newsletter_runs.c.recipients + added)
    )


def planned_slugs(conn: Connection) -> set[str]:
    """Newsletters whose planning has started (a run row exists)."""
    return set(conn.execute(select(newsletter_runs.c.slug)).scalars())


# The rows --------------------------------------------------------------------------


def chunk_timezones(
    conn: Connection, *, send_at: datetime, first: int, last: int
) -> list[str | None]:
    """The distinct time zones (``None``: unset) of the audience with ids in (first, last]."""
    chunk = _chunk(send_at, first, last)
    return list(conn.execute(select(subscribers.c.timezone).where(chunk).distinct()).scalars())


def insert_newsletter_rows(
    conn: Connection,
    *,
    campaign: str,
    slug: str,
    step_id: int,
    send_at: datetime,
    not_after: datetime | None,
    first: int,
    last: int,
    zones: Sequence[str | None],
    due_at: datetime,
    now: datetime,
) -> None:
    """Copies the audience with ids in (first, last] and a time zone in ``zones`` into
    the outbox, due at ``due_at``: one INSERT ... SELECT, skipping rows already there."""
    named = [n for n in zones if n is not None]
    matches = [subscribers.c.timezone.in_(named)] if named else []
    if None in zones:
        matches.append(subscribers.c.timezone.is_(None))
    source = select(
        subscribers.c.id,
        literal(OutboxKind.NEWSLETTER.value),
        literal(campaign),
        literal(slug),
        literal(step_id),
        literal(due_at, outbox.c.due_at.type),
        literal(not_after, outbox.c.expires_at.type),
        literal(OutboxStatus.QUEUED.value),
        literal(0),
        literal(now, outbox.c.created_at.type),
        literal(now, outbox.c.updated_at.type),
    ).where(_chunk(send_at, first, last), or_(*matches))
    if conn.dialect.name == "postgresql":
        # A plain INSERT first: ON CONFLICT's speculative insertion cost PostgreSQL a
        # third more per row, and a chunk rarely meets a row already there (the run's
        # lock keeps two planners off the same chunk). When it does (a subscriber who
        # already has this newsletter), the savepoint undoes the attempt and the chunk
        # is planned again, skipping what is there.
        try:
            with conn.begin_nested():
                conn.execute(insert(outbox).from_select(_COLUMNS, source))
            return
        except IntegrityError:
            pass
    conn.execute(insert_ignore(conn, outbox).from_select(_COLUMNS, source))


def count_newsletter_rows(conn: Connection, *, step_id: int, first: int, last: int) -> int:
    """The newsletter's outbox rows for subscriber ids in (first, last].

    Counted, not returned (RETURNING would ship every id back; psycopg reports no
    rowcount for inserts): the chunk's rows, a range of the unique index.
    """
    return int(
        conn.execute(
            select(func.count()).where(
                outbox.c.subscriber_id > first,
                outbox.c.subscriber_id <= last,
                outbox.c.step_id == step_id,
            )
        ).scalar_one()
    )


def paused_subscribers(conn: Connection, *, now: datetime) -> list[Any]:
    """``id``, ``paused_until`` and ``timezone`` of every subscriber paused beyond ``now``."""
    return list(
        conn.execute(
            select(subscribers.c.id, subscribers.c.paused_until, subscribers.c.timezone).where(
                subscribers.c.paused_until > now
            )
        ).all()
    )


def defer_newsletter_row(
    conn: Connection,
    subscriber_id: int,
    *,
    step_id: int,
    due_at: datetime,
    now: datetime,
) -> None:
    """Moves one subscriber's queued newsletter row to ``due_at`` if it was due earlier.

    Reaches the row through the unique index rather than joining the fresh rows.
    """
    conn.execute(
        update(outbox)
        .where(
            outbox.c.subscriber_id == subscriber_id,
            outbox.c.step_id == step_id,
            outbox.c.status == OutboxStatus.QUEUED,
            outbox.c.due_at < due_at,
        )
        .values(due_at=due_at, updated_at=now)
    )


def analyze_outbox(engine: Engine) -> None:
    """PostgreSQL: fresh statistics for the outbox after a newsletter added rows.

    A newsletter adds up to a million rows at once; until autovacuum catches up, the
    planner would keep plans made for an empty queue (sorting the whole queue to take
    a batch of a thousand).
    """
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE outbox"))
