"""Named operations on enrolments: what is due to plan, moving on after a send, and
one subscriber's enrolments (enrol, pause, stop)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select, update

from nurture.store import bulk
from nurture.store.schema import enrolments, subscribers
from nurture.store.statuses import EnrolmentStatus, SubscriberStatus
from nurture.store.upsert import insert_ignore, insert_ignored


def _due(now: datetime, limit: int) -> Any:
    """Active enrolments of confirmed subscribers whose next step is due by ``now``,
    oldest first, with what planning needs from the subscriber."""
    return (
        select(
            enrolments.c.id,
            enrolments.c.subscriber_id,
            enrolments.c.campaign,
            enrolments.c.next_step,
            enrolments.c.last_step,
            enrolments.c.next_due_at,
            subscribers.c.timezone,
            subscribers.c.paused_until,
        )
        .select_from(enrolments.join(subscribers, subscribers.c.id == enrolments.c.subscriber_id))
        .where(
            enrolments.c.status == EnrolmentStatus.ACTIVE,
            enrolments.c.next_due_at <= now,
            subscribers.c.status == SubscriberStatus.CONFIRMED,
        )
        .order_by(enrolments.c.next_due_at, enrolments.c.id)
        .limit(limit)
    )


def due_for_planning(conn: Connection, *, now: datetime, limit: int) -> list[Any]:
    """The enrolments due by ``now`` (see :func:`_due`), changing nothing (a preview)."""
    return list(conn.execute(_due(now, limit)))


def any_due(conn: Connection, *, now: datetime) -> bool:
    """Whether any enrolment is due by ``now`` (see :func:`_due`): one index probe."""
    return conn.execute(_due(now, 1)).first() is not None


def take_for_planning(conn: Connection, *, now: datetime, limit: int) -> list[Any]:
    """The enrolments due by ``now``, taken: their ``next_due_at`` is cleared, since
    the planner queues each one's next step in the outbox (or ends it) in this same
    transaction, and nothing is left to plan until that step is sent.

    On PostgreSQL one statement locks them (SKIP LOCKED: two planners split the work
    instead of planning the same enrolment twice), clears them and returns them as they
    were (from the sub-select: the updated row's ``next_due_at`` is the new NULL),
    in one round trip instead of two. SQLite holds its write lock from ``BEGIN
    IMMEDIATE``, and reads, then clears.
    """
    if conn.dialect.name == "postgresql":
        due = _due(now, limit).with_for_update(skip_locked=True, of=enrolments).subquery("due")
        taken = (
            update(enrolments)
            .where(enrolments.c.id == due.c.id)
            .values(next_due_at=None, updated_at=now)
            .returning(*due.c)  # as the sub-select read them: next_due_at not yet NULL
        )
        return list(conn.execute(taken))
    rows = due_for_planning(conn, now=now, limit=limit)
    if rows:
        conn.execute(
            update(enrolments)
            .where(bulk.among(conn, enrolments.c.id, [row.id for row in rows]))
            .values(next_due_at=None, updated_at=now)
        )
    return rows


def set_status(conn: Connection, ids: Sequence[int], status: str, *, now: datetime) -> None:
    if ids:
        conn.execute(
            update(enrolments)
            .where(enrolments.c.id.in_(ids))
            .values(status=status, next_due_at=None, updated_at=now)
        )


def advance(
    conn: Connection,
    *,
    campaign: str,
    step_index: int,
    subscriber_ids: Sequence[int],
    sent_at: datetime,
    next_due: datetime | None,
    finished: str = EnrolmentStatus.COMPLETED,
    step: str | None = None,
) -> int:
    """After step ``step_index`` was sent (or skipped): point at the next step, or end
    with status ``finished`` (``held`` for an evergreen sequence).

    Only an enrolment that is waiting for its planned step (``next_due_at`` is NULL
    while a step waits in the outbox) moves: a late second report of the same send
    finds it already moved on and changes nothing. Keyed by the sent step's position
    in the *current* campaign, so a reordered campaign continues after that step.
    """
    if not subscriber_ids:
        return 0
    values: dict[str, Any] = {
        "next_step": step_index + 1,
        "last_step": step,
        "next_due_at": next_due,
        "last_sent_at": sent_at,
        "updated_at": sent_at,
    }
    if next_due is None:
        values["status"] = finished
    return conn.execute(
        update(enrolments)
        .where(
            enrolments.c.campaign == campaign,
            enrolments.c.subscriber_id.in_(subscriber_ids),
            enrolments.c.next_due_at.is_(None),
            enrolments.c.status == EnrolmentStatus.ACTIVE,
        )
        .values(values)
    ).rowcount


def stop_for(
    conn: Connection, *, campaign: str, subscriber_ids: Sequence[int], now: datetime
) -> None:
    """Stops the enrolments of subscribers whose step was refused for good."""
    if subscriber_ids:
        conn.execute(
            update(enrolments)
            .where(
                enrolments.c.campaign == campaign,
                enrolments.c.subscriber_id.in_(subscriber_ids),
                enrolments.c.status == EnrolmentStatus.ACTIVE,
            )
            .values(status=EnrolmentStatus.STOPPED, next_due_at=None, updated_at=now)
        )


def replan(
    conn: Connection, *, campaign: str, subscriber_ids: Sequence[int], now: datetime
) -> None:
    """The planned step vanished (removed from the campaign): plan again from here."""
    if subscriber_ids:
        conn.execute(
            update(enrolments)
            .where(
                enrolments.c.campaign == campaign,
                enrolments.c.subscriber_id.in_(subscriber_ids),
                enrolments.c.next_due_at.is_(None),
                enrolments.c.status == EnrolmentStatus.ACTIVE,
            )
            .values(next_due_at=now, updated_at=now)
        )


# Evergreen sequences ---------------------------------------------------------------


def held_places(conn: Connection, campaign: str) -> list[tuple[str | None, int]]:
    """Where the held readers of a sequence are: distinct (last step sent, steps had)."""
    query = (
        select(enrolments.c.last_step, enrolments.c.next_step)
        .where(enrolments.c.campaign == campaign, enrolments.c.status == EnrolmentStatus.HELD)
        .distinct()
    )
    return [(r.last_step, int(r.next_step)) for r in conn.execute(query)]


def wake(
    conn: Connection,
    campaign: str,
    *,
    place: tuple[str | None, int],
    position: int,
    due: datetime,
    now: datetime,
) -> int:
    """Held readers at ``place`` become active again: their next step is the one at
    ``position`` of the current list, due at ``due``."""
    last_step, had = place
    same_step = (
        enrolments.c.last_step.is_(None)
        if last_step is None
        else enrolments.c.last_step == last_step
    )
    return conn.execute(
        update(enrolments)
        .where(
            enrolments.c.campaign == campaign,
            enrolments.c.status == EnrolmentStatus.HELD,
            enrolments.c.next_step == had,
            same_step,
        )
        .values(status=EnrolmentStatus.ACTIVE, next_step=position, next_due_at=due, updated_at=now)
    ).rowcount


def release_held(
    conn: Connection, campaign: str, *, now: datetime, after_first: bool = False
) -> int:
    """A sequence no longer evergreen: its held readers have completed it (with
    ``after_first``, only those who had received at least one step)."""
    query = update(enrolments).where(
        enrolments.c.campaign == campaign, enrolments.c.status == EnrolmentStatus.HELD
    )
    if after_first:
        query = query.where(enrolments.c.next_step > 0)
    return conn.execute(query.values(status=EnrolmentStatus.COMPLETED, updated_at=now)).rowcount


# One subscriber's enrolments ---------------------------------------------------


def enrolments_of(conn: Connection, subscriber_id: int) -> list[Row[Any]]:
    return list(
        conn.execute(
            select(enrolments)
            .where(enrolments.c.subscriber_id == subscriber_id)
            .order_by(enrolments.c.enrolled_at, enrolments.c.id)
        )
    )


def enrol(conn: Connection, subscriber_id: int, campaign: str, *, now: datetime) -> bool:
    """Enrols with the first step due at ``now``; ``False`` (and no change) when enrolled."""
    row = {
        "subscriber_id": subscriber_id,
        "campaign": campaign,
        "status": EnrolmentStatus.ACTIVE,
        "next_step": 0,
        "next_due_at": now,
        "enrolled_at": now,
        "updated_at": now,
    }
    return insert_ignored(conn, enrolments, row) == 1  # not rowcount: -1 through psycopg


def enrol_many(conn: Connection, rows: Sequence[dict[str, Any]], *, now: datetime) -> None:
    """Enrols many ``{"subscriber_id", "campaign"}`` pairs with the first step due at ``now``.

    A row may say ``next_step`` (an import restoring a sequence part-way): that step is
    then the one due at ``now``.
    """
    if rows:
        conn.execute(
            insert_ignore(conn, enrolments),
            [
                {
                    "next_step": 0,
                    **row,
                    "status": EnrolmentStatus.ACTIVE,
                    "next_due_at": now,
                    "enrolled_at": now,
                    "updated_at": now,
                }
                for row in rows
            ],
        )


def set_enrolment(conn: Connection, enrolment_id: int, **values: Any) -> None:
    conn.execute(update(enrolments).where(enrolments.c.id == enrolment_id).values(values))


def stop_enrolments(
    conn: Connection, subscriber_id: int, *, now: datetime, campaign: str | None = None
) -> int:
    """Stops the active and held enrolments (one campaign's, or all): nothing more gets
    planned, and no step added later wakes them."""
    query = update(enrolments).where(
        enrolments.c.subscriber_id == subscriber_id,
        enrolments.c.status.in_((EnrolmentStatus.ACTIVE, EnrolmentStatus.HELD)),
    )
    if campaign is not None:
        query = query.where(enrolments.c.campaign == campaign)
    return conn.execute(
        query.values(status=EnrolmentStatus.STOPPED, next_due_at=None, updated_at=now)
    ).rowcount
