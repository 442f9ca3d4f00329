"""Read-only numbers for ``nurture stats``: statuses, funnels, unsubscribes per step."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from nurture.store.schema import enrolments, outbox, subscribers
from nurture.store.statuses import MARKETING, EnrolmentStatus, OutboxStatus


def subscribers_by_status(conn: Connection) -> dict[str, int]:
    query = select(subscribers.c.status, func.count()).group_by(subscribers.c.status)
    return dict(conn.execute(query).all())


def sent_per_step(conn: Connection) -> dict[tuple[str, str], int]:
    """How many subscribers received each (campaign, step): the sequence funnel."""
    query = (
        select(outbox.c.campaign, outbox.c.step, func.count())
        .where(outbox.c.status == OutboxStatus.SENT, outbox.c.kind.in_(MARKETING))
        .group_by(outbox.c.campaign, outbox.c.step)
    )
    return {(c, s): n for c, s, n in conn.execute(query)}


def stopped_after_step(conn: Connection) -> dict[tuple[str, int], int]:
    """Stopped enrolments by (campaign, steps received): where people unsubscribed."""
    query = (
        select(enrolments.c.campaign, enrolments.c.next_step, func.count())
        .where(enrolments.c.status == EnrolmentStatus.STOPPED)
        .group_by(enrolments.c.campaign, enrolments.c.next_step)
    )
    return {(c, s): n for c, s, n in conn.execute(query)}


def sends_by_state(conn: Connection) -> dict[str, int]:
    query = select(outbox.c.status, func.count()).group_by(outbox.c.status)
    return dict(conn.execute(query).all())
