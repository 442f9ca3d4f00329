"""Named operations on one subscriber: the row, their enrolments and their queued mail.

The subscriber path (sign-up, confirm, unsubscribe, preferences, erasure) changes one
person at a time; these operations take a connection inside the caller's transaction
so that each change is applied whole or not at all. Bulk work (planning, dispatch)
lives in ``store.enrolments`` and ``store.outbox``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, select, update

from nurture.store.schema import enrolments, outbox, subscribers, webhook_events
from nurture.store.statuses import (
    WAITING,
    EnrolmentStatus,
    OutboxKind,
    OutboxStatus,
)
from nurture.store.upsert import insert_ignore, insert_ignored


def _select(for_update: bool, conn: Connection) -> Any:
    query = select(subscribers)
    # SQLite serialises writers with BEGIN IMMEDIATE already; PostgreSQL needs the lock.
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return query


def by_email(conn: Connection, email: str, *, for_update: bool = False) -> Row[Any] | None:
    """The subscriber with this (normalised) address, or ``None``."""
    return conn.execute(_select(for_update, conn).where(subscribers.c.email == email)).first()


def by_public_id(conn: Connection, public_id: str, *, for_update: bool = False) -> Row[Any] | None:
    """The subscriber a token names, or ``None`` (erased, or never existed)."""
    return conn.execute(
        _select(for_update, conn).where(subscribers.c.public_id == public_id)
    ).first()


def create(conn: Connection, values: dict[str, Any]) -> int | None:
    """Inserts a subscriber; ``None`` when the address exists already (a concurrent sign-up)."""
    return conn.execute(
        insert_ignore(conn, subscribers).values(values).returning(subscribers.c.id)
    ).scalar()


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
    if values:
        conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id).values(values))


def remove(conn: Connection, subscriber_id: int) -> None:
    """Deletes the row: enrolments go with it; outbox rows and consents keep a NULL id."""
    conn.execute(delete(subscribers).where(subscribers.c.id == subscriber_id))


def stream_all(conn: Connection, *, chunk: int = 1000) -> Iterator[Row[Any]]:
    """Every subscriber in id order, fetched ``chunk`` rows at a time (constant memory)."""
    result = conn.execution_options(stream_results=True, yield_per=chunk).execute(
        select(subscribers).order_by(subscribers.c.id)
    )
    yield from result


# Enrolments ---------------------------------------------------------------------


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
    """Enrols many ``{"subscriber_id", "campaign"}`` pairs with the first step due at ``now``."""
    if rows:
        conn.execute(
            insert_ignore(conn, enrolments),
            [
                {
                    **row,
                    "status": EnrolmentStatus.ACTIVE,
                    "next_step": 0,
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
    """Stops the active enrolments (one campaign's, or all): nothing more gets planned."""
    query = update(enrolments).where(
        enrolments.c.subscriber_id == subscriber_id, enrolments.c.status == EnrolmentStatus.ACTIVE
    )
    if campaign is not None:
        query = query.where(enrolments.c.campaign == campaign)
    return conn.execute(
        query.values(status=EnrolmentStatus.STOPPED, next_due_at=None, updated_at=now)
    ).rowcount


# Outbox rows of one subscriber --------------------------------------------------------


def queue_confirmation(
    conn: Connection, subscriber_id: int, *, campaign: str, step: str, now: datetime
) -> int | None:
    """Queues a confirmation email due now; ``None`` when that (campaign, step) exists."""
    return conn.execute(
        insert_ignore(conn, outbox)
        .values(
            subscriber_id=subscriber_id,
            kind=OutboxKind.CONFIRMATION,
            campaign=campaign,
            step=step,
            due_at=now,
            status=OutboxStatus.QUEUED,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        .returning(outbox.c.id)
    ).scalar()


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
