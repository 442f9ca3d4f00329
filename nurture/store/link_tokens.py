"""Subscribers' links signed ahead of time (``subscribers.link_tokens``): whose are due
for signing, and keeping what was signed. See :mod:`nurture.delivery.presigning`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, or_, select, text

from nurture.store import bulk
from nurture.store.schema import subscribers
from nurture.store.statuses import SubscriberStatus

#: The subscriber columns that hold them.
COLUMNS = ("link_tokens", "links_key", "links_signed_at")


def last_id(conn: Connection) -> int:
    """The highest subscriber id (0: none): where a walk over the ids may stop."""
    return int(conn.execute(select(func.max(subscribers.c.id))).scalar() or 0)


def due(
    conn: Connection, *, key: str, signed_before: datetime, after_id: int, up_to: int
) -> list[Any]:
    """``id`` and ``public_id`` of confirmed subscribers with ids in (``after_id``,
    ``up_to``], by id, whose links are missing, signed with another key than ``key``,
    or signed before ``signed_before``.

    A range of the primary key, with the status checked here rather than in SQL: given
    ``status = 'confirmed'``, SQLite read every confirmed subscriber through the status
    index, and sorted them, for each range (minutes for a million).
    """
    found = conn.execute(
        select(subscribers.c.id, subscribers.c.public_id, subscribers.c.status)
        .where(
            subscribers.c.id > after_id,
            subscribers.c.id <= up_to,
            or_(
                subscribers.c.links_key.is_(None),
                subscribers.c.links_key != key,
                subscribers.c.links_signed_at < signed_before,
            ),
        )
        .order_by(subscribers.c.id)
    ).all()
    return [row for row in found if row.status == SubscriberStatus.CONFIRMED]


def keep(conn: Connection, signed: Sequence[tuple[int, str]], *, key: str, at: datetime) -> None:
    """Stores each (subscriber id, ``"UNSUBSCRIBE PREFERENCES"``), signed at ``at`` with
    the key named ``key``: one statement for the lot (as :mod:`nurture.store.bulk` does
    for inserts), not one per subscriber."""
    if not signed:
        return
    params: dict[str, Any] = {"key": key, "at": at}
    if conn.dialect.name == "postgresql":
        source = (
            "SELECT u.id, u.tokens FROM"
            " unnest(CAST(:ids AS BIGINT[]), CAST(:tokens AS TEXT[])) AS u(id, tokens)"
        )
        params["ids"] = bulk.pg_array_literal([row_id for row_id, _ in signed])
        params["tokens"] = bulk.pg_array_literal([tokens for _, tokens in signed])
    else:
        source = (
            "SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS tokens"
            " FROM json_each(:rows)"
        )
        params["rows"] = json.dumps(signed)
    statement = text(
        "UPDATE subscribers SET link_tokens = v.tokens, links_key = :key, links_signed_at = :at"
        f" FROM ({source}) AS v WHERE subscribers.id = v.id"
    ).bindparams(bindparam("at", type_=subscribers.c.links_signed_at.type))
    conn.execute(statement, params)
