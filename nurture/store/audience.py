"""Counts the studio shows before the therapist changes something: who sits where.

Aggregates only, never a person: how many readers of a sequence wait at each position
(and whether their next email is already queued), and where a newsletter stands.
"""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from nurture.store.schema import enrolments, outbox, subscribers
from nurture.store.statuses import EnrolmentStatus, OutboxKind, OutboxStatus, SubscriberStatus


def positions(conn: Connection, campaign: str) -> dict[int, int]:
    """Readers in the sequence by ``next_step`` (how many of its steps they have had).

    Active enrolments of confirmed subscribers, plus readers held at the end of an
    evergreen sequence (they wait for steps added later).
    """
    rows = conn.execute(
        select(enrolments.c.next_step, func.count())
        .join(subscribers, subscribers.c.id == enrolments.c.subscriber_id)
        .where(
            enrolments.c.campaign == campaign,
            enrolments.c.status.in_((EnrolmentStatus.ACTIVE, EnrolmentStatus.HELD)),
            subscribers.c.status == SubscriberStatus.CONFIRMED,
        )
        .group_by(enrolments.c.next_step)
    )
    return {int(step): int(count) for step, count in rows}


def waiting_steps(conn: Connection, campaign: str) -> dict[str, int]:
    """Sequence emails already queued (planned, not sent yet), by step."""
    rows = conn.execute(
        select(outbox.c.step, func.count())
        .where(
            outbox.c.kind == OutboxKind.SEQUENCE,
            outbox.c.campaign == campaign,
            outbox.c.status.in_((OutboxStatus.QUEUED, OutboxStatus.SENDING)),
        )
        .group_by(outbox.c.step)
    )
    return {str(step): int(count) for step, count in rows}


def newsletter_progress(conn: Connection, campaign: str, slug: str) -> dict[str, int]:
    """A newsletter's outbox rows by status (empty: not planned yet)."""
    rows = conn.execute(
        select(outbox.c.status, func.count())
        .where(
            outbox.c.kind == OutboxKind.NEWSLETTER,
            outbox.c.campaign == campaign,
            outbox.c.step == slug,
        )
        .group_by(outbox.c.status)
    )
    return {str(status): int(count) for status, count in rows}


def newsletters_started(conn: Connection, campaign: str) -> dict[str, int]:
    """Newsletters with outbox rows, and how many of them were sent."""
    rows = conn.execute(
        select(outbox.c.step, func.count().filter(outbox.c.status == OutboxStatus.SENT))
        .where(outbox.c.kind == OutboxKind.NEWSLETTER, outbox.c.campaign == campaign)
        .group_by(outbox.c.step)
    )
    return {str(step): int(sent or 0) for step, sent in rows}
