"""Named operations on one subscriber's outbox rows: their confirmation, their queued
mail (cancel, move, revive) and their history (export, scrub before erasure).

The subscriber path changes one person at a time, inside the caller's transaction.
The queue as a whole (planning's inserts, dispatch, reconciliation) is
``store.outbox``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select, update

from nurture.store import steps
from nurture.store.schema import outbox, webhook_events
from nurture.store.statuses import WAITING, OutboxKind, OutboxStatus
from nurture.store.upsert import insert_ignore_returning_key


def subscriber_of(conn: Connection, outbox_id: int) -> int | None:
    """The id of the subscriber an outbox row was for (``None``: no such row, or erased)."""
    found = conn.execute(select(outbox.c.subscriber_id).where(outbox.c.id == outbox_id)).scalar()
    return None if found is None else int(found)


def queue_confirmation(
    conn: Connection, subscriber_id: int, *, campaign: str, step: str, now: datetime
) -> int | None:
    """Queues a confirmation email due now; ``None`` when that (campaign, step) exists."""
    values = {
        "subscriber_id": subscriber_id,
        "kind": OutboxKind.CONFIRMATION.value,
        "campaign": campaign,
        "step": step,
        "step_id": steps.id_of(conn, campaign, step),
        "due_at": now,
        "status": OutboxStatus.QUEUED.value,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }
    return conn.execute(insert_ignore_returning_key(conn, outbox), values).scalar()


def confirmation_campaign(
    conn: Connection, subscriber_id: int, *, queued_by: datetime | None = None
) -> str | None:
    """The campaign of the latest confirmation email queued for a subscriber, or ``None``.

    With ``queued_by`` (when a confirm link was made), the latest queued at or before
    then: the email that link came from. Cancelled and failed rows never reached the
    inbox, so they do not count.
    """
    query = (
        select(outbox.c.campaign)
        .where(
            outbox.c.subscriber_id == subscriber_id,
            outbox.c.kind == OutboxKind.CONFIRMATION,
            outbox.c.status.not_in((OutboxStatus.CANCELLED, OutboxStatus.FAILED)),
        )
        .order_by(outbox.c.created_at.desc(), outbox.c.id.desc())
        .limit(1)
    )
    if queued_by is not None:
        found = conn.execute(query.where(outbox.c.created_at <= queued_by)).scalar()
        if found is not None:
            return str(found)
    found = conn.execute(query).scalar()
    return None if found is None else str(found)


def waiting_mail(
    conn: Connection,
    subscriber_id: int,
    *,
    kinds: Sequence[str] | None = None,
    campaign: str | None = None,
) -> list[Row[Any]]:
    """Queued rows of a subscriber, optionally of some kinds or one campaign."""
    query = select(outbox.c.id, outbox.c.kind, outbox.c.campaign, outbox.c.due_at).where(
        outbox.c.subscriber_id == subscriber_id, outbox.c.status.in_(WAITING)
    )
    if kinds is not None:
        query = query.where(outbox.c.kind.in_(kinds))
    if campaign is not None:
        query = query.where(outbox.c.campaign == campaign)
    return list(conn.execute(query.order_by(outbox.c.id)))


def cancel_mail(
    conn: Connection,
    subscriber_id: int,
    *,
    now: datetime,
    reason: str,
    kinds: Sequence[str] | None = None,
    campaign: str | None = None,
) -> int:
    """Cancels queued rows of a subscriber (all, some kinds, or one campaign)."""
    query = update(outbox).where(
        outbox.c.subscriber_id == subscriber_id, outbox.c.status.in_(WAITING)
    )
    if kinds is not None:
        query = query.where(outbox.c.kind.in_(kinds))
    if campaign is not None:
        query = query.where(outbox.c.campaign == campaign)
    return conn.execute(
        query.values(
            status=OutboxStatus.CANCELLED, error=reason[:500], lease_until=None, updated_at=now
        )
    ).rowcount


def move_mail(conn: Connection, row_id: int, *, due_at: datetime, now: datetime) -> None:
    """Gives one queued row a new due time (a pause, or its end)."""
    conn.execute(
        update(outbox)
        .where(outbox.c.id == row_id, outbox.c.status == OutboxStatus.QUEUED)
        .values(due_at=due_at, updated_at=now)
    )


def requeue_cancelled(
    conn: Connection, subscriber_id: int, *, campaign: str, step: str, now: datetime
) -> bool:
    """Puts a cancelled, never-sent row back in the queue, due now; ``True`` if there was one.

    A resubscribed person continues their sequence where it stopped; the step that was
    cancelled keeps its row (the unique constraint), so it is revived, not planned anew.
    """
    return (
        conn.execute(
            update(outbox)
            .where(
                outbox.c.subscriber_id == subscriber_id,
                outbox.c.campaign == campaign,
                outbox.c.step == step,
                outbox.c.status == OutboxStatus.CANCELLED,
            )
            .values(
                status=OutboxStatus.QUEUED,
                due_at=now,
                attempts=0,
                error=None,
                worker=None,
                lease_until=None,
                updated_at=now,
            )
        ).rowcount
        == 1
    )


def scrub_mail_history(conn: Connection, subscriber_id: int) -> int:
    """Clears the error texts of a subscriber's outbox rows and of their delivery events.

    Before an erasure: a bounce or a provider's refusal often quotes the address.
    Returns how many outbox rows were scrubbed.
    """
    theirs = select(outbox.c.id).where(outbox.c.subscriber_id == subscriber_id)
    conn.execute(
        update(webhook_events)
        .where(webhook_events.c.outbox_id.in_(theirs), webhook_events.c.detail.is_not(None))
        .values(detail=None)
    )
    return conn.execute(
        update(outbox)
        .where(outbox.c.subscriber_id == subscriber_id, outbox.c.error.is_not(None))
        .values(error=None)
    ).rowcount


def mail_history(conn: Connection, subscriber_id: int) -> list[dict[str, Any]]:
    """Every outbox row of a subscriber, without any body (none is stored), oldest first."""
    rows = conn.execute(
        select(
            outbox.c.id,
            outbox.c.kind,
            outbox.c.campaign,
            outbox.c.step,
            outbox.c.status,
            outbox.c.due_at,
            outbox.c.attempts,
            outbox.c.provider_message_id,
            outbox.c.error,
            outbox.c.created_at,
            outbox.c.sent_at,
        )
        .where(outbox.c.subscriber_id == subscriber_id)
        .order_by(outbox.c.id)
    )
    return [dict(row._mapping) for row in rows]
