"""Named operations on ``webhook_events``: the record of provider events already applied.

Providers deliver events more than once; the event id is the primary key, so recording
an event a second time inserts nothing, and the caller knows to skip it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from nurture.store import bulk
from nurture.store.schema import outbox, webhook_events
from nurture.store.statuses import OutboxStatus
from nurture.store.upsert import insert_ignored


def remember(
    conn: Connection,
    *,
    event_id: str,
    provider: str,
    event: str,
    outbox_id: int | None,
    occurred_at: datetime | None,
    received_at: datetime,
    detail: str | None,
) -> bool:
    """Records one event (id and detail truncated to fit); ``False`` if it was known."""
    row = event_row(
        event_id=event_id,
        provider=provider,
        event=event,
        outbox_id=outbox_id,
        occurred_at=occurred_at,
        received_at=received_at,
        detail=detail,
    )
    return insert_ignored(conn, webhook_events, row) == 1


def event_row(
    *,
    event_id: str,
    provider: str,
    event: str,
    outbox_id: int | None,
    occurred_at: datetime | None,
    received_at: datetime,
    detail: str | None,
) -> dict[str, Any]:
    """The row recording one event, its id and detail truncated to fit the columns."""
    return {
        "event_id": event_id[:100],
        "provider": provider,
        "event": event,
        "outbox_id": outbox_id,
        "occurred_at": occurred_at,
        "received_at": received_at,
        "detail": (detail or "")[:500] or None,
    }


def remember_many(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Records a batch of events in one statement (as :func:`remember` does one);
    returns the ids of those not known before. ``rows`` hold the table's columns."""
    columns = [c.name for c in webhook_events.columns]
    inserted = bulk.insert_ignore_returning(conn, webhook_events, rows, columns, {}, ("event_id",))
    return {row.event_id for row in inserted}


def unsettled(conn: Connection, outbox_ids: Iterable[int]) -> set[int]:
    """Those of ``outbox_ids`` not final yet (queued, sending or unknown): the only rows
    that evidence of a send can still change. One query for a whole batch of events."""
    ids = sorted(set(outbox_ids))
    if not ids:
        return set()
    pending = (OutboxStatus.QUEUED, OutboxStatus.SENDING, OutboxStatus.UNKNOWN)
    query = select(outbox.c.id).where(outbox.c.id.in_(ids), outbox.c.status.in_(pending))
    return set(conn.execute(query).scalars())
