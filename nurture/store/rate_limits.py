"""Named operations of the shared sign-up rate limit (PostgreSQL).

Each web process of one PostgreSQL counts ``POST /subscribe`` in the same table, so
the limit holds however many processes serve the form. The rule is the in-memory
:class:`~nurture.web.ratelimit.SlidingWindow`'s: at most ``limit`` allowed requests
per key in the last ``window`` seconds, a refused request not counted. A transaction
advisory lock per key makes "count, then record" one step between processes.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, func, insert, select, text

from nurture.store.schema import rate_limit_hits


def hit(conn: Connection, key: str, *, limit: int, window: float, now: datetime) -> int | None:
    """Counts one request of ``key``; ``None`` when allowed, else whole seconds to wait.

    Call inside a transaction (the lock is held until it ends).
    """
    key = key[:80]
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
    since = now - timedelta(seconds=window)
    conn.execute(
        delete(rate_limit_hits).where(rate_limit_hits.c.key == key, rate_limit_hits.c.at <= since)
    )
    count, oldest = conn.execute(
        select(func.count(), func.min(rate_limit_hits.c.at)).where(rate_limit_hits.c.key == key)
    ).one()
    if count >= limit and oldest is not None:
        return max(1, math.ceil((oldest - since).total_seconds()))
    conn.execute(insert(rate_limit_hits).values(key=key, at=now))
    return None


def prune(conn: Connection, before: datetime) -> int:
    """Deletes hits older than ``before`` (keys no request came back for); how many."""
    return conn.execute(delete(rate_limit_hits).where(rate_limit_hits.c.at < before)).rowcount
