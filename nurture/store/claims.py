"""The claims on rows in flight: one per batch marked ``sending`` (``outbox_claims``).

A claim holds its batch's fencing token (which its rows carry in ``outbox.worker``),
its lease and its rows' ids. It is written in the transaction that marks the rows
``sending`` and deleted in the one that records their outcomes, so the live claims
name every row in flight, and a claim whose lease ran out names rows whose worker
vanished. The outbox keeps no index of its rows ``sending``: entering one and leaving
it again cost a fifth of each of a row's two rewrites on its way out.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select

from nurture.store.schema import outbox_claims


def open_claim(
    conn: Connection, token: str, ids: str, *, lease_until: datetime, now: datetime
) -> None:
    """The claim ``token`` on ``ids`` (a JSON list: :func:`~nurture.store.bulk.json_ids`),
    until ``lease_until``."""
    values = {"token": token, "lease_until": lease_until, "ids": ids}
    conn.execute(insert(outbox_claims), {**values, "created_at": now})


def release(conn: Connection, token: str) -> None:
    """Ends the claim ``token``: every row it marked ``sending`` has its outcome
    recorded (or went back to the queue), so its lease has nothing left to watch."""
    conn.execute(delete(outbox_claims).where(outbox_claims.c.token == token))


def expired(conn: Connection, *, now: datetime) -> list[tuple[str, list[int]]]:
    """The claims whose lease ran out, with their rows' ids; locked on PostgreSQL (SKIP
    LOCKED: two housekeepers share the work)."""
    query = select(outbox_claims.c.token, outbox_claims.c.ids).where(
        outbox_claims.c.lease_until < now
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [(token, json.loads(ids)) for token, ids in conn.execute(query)]


def claimed_ids(conn: Connection) -> list[int]:
    """The ids of every row a live claim holds (a few thousand at most)."""
    return [i for (ids,) in conn.execute(select(outbox_claims.c.ids)) for i in json.loads(ids)]
