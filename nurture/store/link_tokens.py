"""Subscribers' links signed ahead of time (``subscribers.link_tokens``): whose are due
for signing, and keeping what was signed. See :mod:`nurture.delivery.presigning`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, or_, select, update

from nurture.store.schema import subscribers
from nurture.store.statuses import SubscriberStatus

#: The subscriber columns that hold them.
COLUMNS = ("link_tokens", "links_key", "links_signed_at")


def due(
    conn: Connection, *, key: str, signed_before: datetime, after_id: int, limit: int
) -> list[Any]:
    """``id`` and ``public_id`` of confirmed subscribers after ``after_id``, by id, whose
    links are missing, signed with another key than ``key``, or signed before
    ``signed_before``. Walks the primary key: no index on the link columns is kept up to
    date for a scan that runs a few times an hour."""
    return list(
        conn.execute(
            select(subscribers.c.id, subscribers.c.public_id)
            .where(
                subscribers.c.id > after_id,
                subscribers.c.status == SubscriberStatus.CONFIRMED,
                or_(
                    subscribers.c.links_key.is_(None),
                    subscribers.c.links_key != key,
                    subscribers.c.links_signed_at < signed_before,
                ),
            )
            .order_by(subscribers.c.id)
            .limit(limit)
        ).all()
    )


def keep(conn: Connection, signed: Sequence[tuple[int, str]], *, key: str, at: datetime) -> None:
    """Stores each subscriber's ``"UNSUBSCRIBE PREFERENCES"`` tokens, signed at ``at``
    with the key named ``key``."""
    if signed:
        conn.execute(
            update(subscribers)
            .where(subscribers.c.id == bindparam("row_id"))
            .values(link_tokens=bindparam("tokens"), links_key=key, links_signed_at=at),
            [{"row_id": row_id, "tokens": tokens} for row_id, tokens in signed],
        )
