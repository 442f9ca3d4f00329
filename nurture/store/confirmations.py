"""Named operations on confirmation emails as a whole: how many, and what each carried.

A pending address can be signed up by anyone, so a sign-up form's first name and time
zone are kept with the confirmation email that form queued (``confirmation_details``)
and applied only when that email's link is pressed. The queue of the confirmation
emails themselves is ``store.subscriber_outbox``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, insert, select

from nurture.store.schema import confirmation_details, outbox
from nurture.store.statuses import OutboxKind, OutboxStatus


def queued_since(conn: Connection, subscriber_id: int, since: datetime) -> int:
    """How many confirmation emails were queued for a subscriber at or after ``since``.

    Every row counts, cancelled or not: the cap it serves is on what a stranger can
    make us send to one inbox.
    """
    return int(
        conn.execute(
            select(func.count())
            .select_from(outbox)
            .where(
                outbox.c.subscriber_id == subscriber_id,
                outbox.c.kind == OutboxKind.CONFIRMATION,
                outbox.c.created_at >= since,
            )
        ).scalar_one()
    )


def keep_details(
    conn: Connection,
    *,
    outbox_id: int,
    subscriber_id: int,
    first_name: str | None,
    timezone: str | None,
) -> None:
    """Keeps the details a sign-up form carried with the confirmation it queued."""
    values = {
        "outbox_id": outbox_id,
        "subscriber_id": subscriber_id,
        "first_name": first_name,
        "timezone": timezone,
    }
    conn.execute(insert(confirmation_details), values)


def details_of_link(
    conn: Connection, subscriber_id: int, *, queued_by: datetime | None
) -> tuple[str | None, str | None] | None:
    """``(first_name, timezone)`` that came with the email a confirm link was in, or ``None``.

    That email is the latest confirmation queued at or before ``queued_by`` (the link's
    signing time), as for its campaign; cancelled and failed ones never reached the
    inbox. ``None`` when it carried no details (queued before they were kept, or by an
    undo, which asks for none) or when the time is unknown.
    """
    if queued_by is None:
        return None
    latest = (
        select(outbox.c.id)
        .where(
            outbox.c.subscriber_id == subscriber_id,
            outbox.c.kind == OutboxKind.CONFIRMATION,
            outbox.c.status.not_in((OutboxStatus.CANCELLED, OutboxStatus.FAILED)),
            outbox.c.created_at <= queued_by,
        )
        .order_by(outbox.c.created_at.desc(), outbox.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    found = conn.execute(
        select(confirmation_details.c.first_name, confirmation_details.c.timezone).where(
            confirmation_details.c.outbox_id == latest
        )
    ).first()
    return None if found is None else (found.first_name, found.timezone)
