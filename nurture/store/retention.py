"""Named operations of data retention: who is due for erasure, and old provider events.

The erasure itself is :func:`nurture.subscriptions.gdpr.erase_row`, the same as
``nurture subscribers erase``; these queries only find the people it applies to.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, or_, select

from nurture.store.schema import subscribers, webhook_events
from nurture.store.statuses import SubscriberStatus


def _due(cutoff: datetime) -> Any:
    # Unsubscribed (by link, mail, preferences, bounce or spam report) before the
    # cutoff, and no confirmation sent since: someone who asked to come back has
    # until their link expires, and longer.
    return (
        subscribers.c.status == SubscriberStatus.UNSUBSCRIBED,
        or_(
            subscribers.c.unsubscribed_at < cutoff,
            subscribers.c.unsubscribed_at.is_(None) & (subscribers.c.created_at < cutoff),
        ),
        or_(
            subscribers.c.confirmation_sent_at.is_(None),
            subscribers.c.confirmation_sent_at < cutoff,
        ),
    )


def unsubscribed_before(conn: Connection, cutoff: datetime, *, limit: int) -> list[int]:
    """Ids of up to ``limit`` people unsubscribed before ``cutoff``, oldest id first."""
    query = select(subscribers.c.id).where(*_due(cutoff)).order_by(subscribers.c.id).limit(limit)
    return list(conn.execute(query).scalars())


def still_due(row: Row[Any], cutoff: datetime) -> bool:
    """Whether a row read again under its lock still matches :func:`unsubscribed_before`."""
    left = row.unsubscribed_at or row.created_at
    return (
        row.status == SubscriberStatus.UNSUBSCRIBED
        and left < cutoff
        and (row.confirmation_sent_at is None or row.confirmation_sent_at < cutoff)
    )


def prune_webhook_events(conn: Connection, cutoff: datetime) -> int:
    """Deletes provider events received before ``cutoff``; returns how many."""
    return conn.execute(
        delete(webhook_events).where(webhook_events.c.received_at < cutoff)
    ).rowcount
