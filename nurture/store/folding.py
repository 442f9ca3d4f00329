"""Folding rows that are going away into aggregate counts, so the numbers outlive them.

Two things delete rows the statistics read: retention of old mail
(``RETENTION_SENT_DAYS``: outbox rows folded into ``outbox_daily``, one count per step,
state and day) and erasure of a subscriber (their left-behind enrolments folded into
``sequence_stops``). Each fold adds to the counts and deletes in the caller's
transaction, so a total read before and after is the same (see :mod:`stats`).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import Connection, Table, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from nurture.store.schema import enrolments, outbox, outbox_daily, sequence_stops, subscribers
from nurture.store.statuses import EnrolmentStatus, OutboxStatus, SubscriberStatus

#: The outbox states that are over: only these rows are ever folded.
FINISHED = (OutboxStatus.SENT, OutboxStatus.FAILED, OutboxStatus.CANCELLED)


def fold_old_outbox(conn: Connection, *, before: datetime, limit: int = 5000) -> int:
    """Folds up to ``limit`` finished outbox rows that ended before ``before``; how many.

    A row's day is the day it was sent (or, unsent, last changed), in UTC. Rows still
    queued, in flight or of unknown outcome are never touched.
    """
    ended = func.coalesce(outbox.c.sent_at, outbox.c.updated_at)
    query = (
        select(outbox.c.id, outbox.c.kind, outbox.c.campaign, outbox.c.step, outbox.c.status)
        .add_columns(ended.label("ended"))
        .where(outbox.c.status.in_(FINISHED), ended < before)
        .order_by(outbox.c.id)
        .limit(limit)
    )
    rows = conn.execute(query).all()
    if not rows:
        return 0
    counts = Counter(
        (r.kind, r.campaign, r.step, _as_datetime(r.ended).date(), r.status) for r in rows
    )
    _add(
        conn,
        outbox_daily,
        ["kind", "campaign", "step", "day", "status"],
        [
            {"kind": k, "campaign": c, "step": s, "day": d, "status": st, "count": n}
            for (k, c, s, d, st), n in counts.items()
        ],
    )
    conn.execute(delete(outbox).where(outbox.c.id.in_([r.id for r in rows])))
    return len(rows)


def fold_stops(conn: Connection, subscriber_id: int) -> None:
    """Before a subscriber row is deleted: counts the sequences they left.

    What :func:`nurture.store.stats.collect` counts as "stopped after" while the row
    lives (a stopped enrolment of an unsubscribed reader) and, for an erasure in the
    middle of a sequence, the active enrolment too: either way, they left there.
    """
    status = conn.execute(
        select(subscribers.c.status).where(subscribers.c.id == subscriber_id)
    ).scalar_one_or_none()
    left = [EnrolmentStatus.ACTIVE]
    if status == SubscriberStatus.UNSUBSCRIBED:
        left.append(EnrolmentStatus.STOPPED)
    rows = conn.execute(
        select(enrolments.c.campaign, enrolments.c.next_step, enrolments.c.updated_at).where(
            enrolments.c.subscriber_id == subscriber_id, enrolments.c.status.in_(left)
        )
    ).all()
    counts = Counter((r.campaign, r.next_step, _as_datetime(r.updated_at).date()) for r in rows)
    _add(
        conn,
        sequence_stops,
        ["campaign", "received", "day"],
        [
            {"campaign": c, "received": received, "day": d, "count": n}
            for (c, received, d), n in counts.items()
        ],
    )


def _add(conn: Connection, table: Table, keys: list[str], rows: list[dict[str, object]]) -> None:
    """Adds each row's ``count`` to the row with the same key (inserted when new)."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=keys, set_={"count": table.c.count + statement.excluded.count}
        ),
        rows,
    )


def _as_datetime(value: object) -> datetime:
    # coalesce() loses the column type on SQLite: the text comes back as it is stored.
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
