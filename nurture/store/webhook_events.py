"""Named operations on ``webhook_events``: the record of provider events already applied.

Providers deliver events more than once; the event id is the primary key, so recording
an event a second time inserts nothing, and the caller knows to skip it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from nurture.store.schema import webhook_events
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
    row = {
        "event_id": event_id[:100],
        "provider": provider,
        "event": event,
        "outbox_id": outbox_id,
        "occurred_at": occurred_at,
        "received_at": received_at,
        "detail": (detail or "")[:500] or None,
    }
    return insert_ignored(conn, webhook_events, row) == 1
