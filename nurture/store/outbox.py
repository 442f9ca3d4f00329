"""Named operations on the outbox: plan, take, mark, expire, cancel.

The life of a row::

    queued --take + start_sending--> sending --> sent | failed | unknown --> sent | queued
      |                                 |
      |                                 +--(lease over: the worker died)--> unknown
      +--(unsubscribe, suppression, expiry)--> cancelled

A dispatcher takes due rows (locked), checks them, and marks the ones it will send
``sending`` in the same transaction, committed *before* the provider request leaves.
So a crash at any point leaves evidence: before the commit, the rows are still
``queued`` and nothing left; after it, a ``sending`` row may have been sent and becomes
``unknown`` when its lease runs out, until the provider's events (or the folder) say
what happened.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    bindparam,
    func,
    or_,
    select,
    text,
    true,
    update,
)

from nurture.store import bulk, claims, steps
from nurture.store import outbox_sql as sql
from nurture.store.claims import release as release  # dispatch ends a claim it recorded
from nurture.store.schema import (
    as_utc,
    outbox,
    webhook_events,
)
from nurture.store.statuses import OutboxStatus

#: What planning decides of a row; the rest starts the same for every row.
_PLANNED = ("subscriber_id", "kind", "campaign", "step", "step_id", "due_at", "expires_at")
_IN_FLIGHT = text("outbox.status IN ('sending', 'unknown')")


class Claimed(NamedTuple):
    """A row taken for sending, with what dispatch needs from its subscriber."""

    id: int
    subscriber_id: int | None
    kind: str
    campaign: str
    step: str
    attempts: int
    # The flags (expired, newsletters, stale) are read for their truth only: SQLite
    # gives them as 0 and 1.
    expired: bool  # a newsletter past its "not after"
    email: str | None
    public_id: str | None
    first_name: str | None
    timezone: str | None
    status: str | None  # the subscriber's
    paused_until: datetime | None  # only when the pause is still running
    newsletters: bool | None  # does the subscriber still want newsletters?
    stale: bool = False  # planned longer ago than retries may take
    # "UNSUBSCRIBE PREFERENCES" tokens signed ahead of time, when still good to use.
    links: str | None = None


def enqueue(conn: Connection, rows: Sequence[dict[str, Any]], *, now: datetime) -> int:
    """Inserts planned rows, skipping any (subscriber, campaign, step) already there."""
    return len(enqueue_keys(conn, rows, now=now))


def enqueue_keys(
    conn: Connection, rows: Sequence[dict[str, Any]], *, now: datetime
) -> set[tuple[int, str, str]]:
    """Like :func:`enqueue`; returns the (subscriber, campaign, step) really inserted."""
    ids = steps.ids_of(conn, {(row["campaign"], row["step"]) for row in rows})
    rows = [{**row, "step_id": ids[(row["campaign"], row["step"])]} for row in rows]
    inserted = bulk.insert_ignore_returning(
        conn,
        outbox,
        rows,
        _PLANNED,
        {"status": OutboxStatus.QUEUED.value, "attempts": 0, "created_at": now, "updated_at": now},
        returning=("subscriber_id", "campaign", "step"),
        conflicts_rare=True,  # a step is planned once: its enrolment is locked meanwhile
    )
    return {(r.subscriber_id, r.campaign, r.step) for r in inserted}


def existing(conn: Connection, keys: Iterable[tuple[int, str, str]]) -> list[Any]:
    """The rows already planned for these (subscriber, campaign, step) keys."""
    found = []
    for subscriber_id, campaign, step in keys:
        row = conn.execute(
            select(
                outbox.c.id,
                outbox.c.subscriber_id,
                outbox.c.kind,
                outbox.c.campaign,
                outbox.c.step,
                outbox.c.status,
                outbox.c.sent_at,
            ).where(
                outbox.c.subscriber_id == subscriber_id,
                outbox.c.campaign == campaign,
                outbox.c.step == step,
            )
        ).first()
        if row is not None:
            found.append(row)
    return found


def take(
    conn: Connection,
    *,
    now: datetime,
    limit: int,
    only_ids: Sequence[int] | None = None,
    give_up: timedelta = timedelta(days=2),
    links: tuple[str, datetime] | None = None,
) -> list[Claimed]:
    """Up to ``limit`` due rows with their subscriber, oldest first, held for this
    transaction: PostgreSQL locks them ``FOR UPDATE SKIP LOCKED`` (several dispatchers
    take side by side without waiting on or stealing each other's rows); SQLite holds
    its write lock from ``BEGIN IMMEDIATE`` (see ``store.database``). The caller marks
    what it will send with :func:`start_sending` in the same transaction; rows it does
    not mark stay queued, untouched.

    ``links`` (the newest key's id, and the oldest signing time still good to use) asks
    for the subscriber's links signed ahead of time, in ``Claimed.links``; without it,
    or when theirs do not qualify, that is ``None``.
    """
    links_key, links_since = links or ("", now)  # "": no key has that id
    params = {
        "now": now,
        "stale_before": now - give_up,
        "limit": limit,
        "links_key": links_key,
        "links_since": links_since,
    }
    if only_ids is not None:
        params["ids"] = bulk.id_list(conn, only_ids)
    taken = list(map(Claimed._make, sql.take_rows(conn, only_ids is not None, params)))
    for i, row in enumerate(taken):
        if row.paused_until is not None:  # untyped in the query: see outbox_sql.take
            taken[i] = row._replace(paused_until=as_utc(row.paused_until))
    return taken


def start_sending(
    conn: Connection, ids: Sequence[int], *, token: str, now: datetime, lease: timedelta
) -> None:
    """Marks rows taken by :func:`take` as ``sending`` under the claim ``token``.

    Committed *before* the provider request leaves: from here on a crash leaves a
    ``sending`` row whose lease runs out, and it becomes ``unknown`` (never resent
    blindly). The token names this one batch for the statements that record it, and
    its claim (``outbox_claims``, written here) holds the lease; :func:`release` ends
    it once the batch is recorded.
    """
    if ids:
        listed = bulk.json_ids(ids)  # the claim's list; on SQLite the statement's too
        postgresql = conn.dialect.name == "postgresql"
        ids_param = bulk.pg_array_ids(ids) if postgresql else listed
        params = {"ids": ids_param, "token": token, "lease": now + lease, "now": now}
        conn.execute(sql.start_sending(conn.dialect.name), params)
        claims.open_claim(conn, token, listed, lease_until=now + lease, now=now)


def give_back(
    conn: Connection, ids: Sequence[int], *, token: str, error: str, now: datetime
) -> None:
    """Rows the claim ``token`` marked ``sending`` that never left: back to the queue,
    due at once, and the claim ends."""
    release(conn, token)  # first: expire_leases locks a claim before its rows
    due = dict.fromkeys(ids, now)
    requeue(conn, due, now=now, expect=OutboxStatus.SENDING, error=error, token=token)


def _among(conn: Connection, ids: Sequence[int]) -> Any:
    """``outbox.id`` is one of ``ids``, passed as one parameter (see :func:`bulk.among`)."""
    return bulk.among(conn, outbox.c.id, ids)


def mark_group_sent(
    conn: Connection, ids: Sequence[int], *, message_id: str | None, now: datetime
) -> int:
    """Rows that share one provider message id are sent (one statement).

    No claim token is asked for: an accepted request is evidence that the email left,
    even when the claim outlived its lease. So any row not final yet changes: ``sending``
    or ``unknown``, and ``queued`` too (requeued after its lease ran out, and recording
    it now keeps it from being sent a second time).
    """
    if not ids:
        return 0
    params = {"ids": bulk.id_list(conn, ids), "message_id": message_id, "now": now}
    return conn.execute(sql.mark_group_sent(conn.dialect.name), params).rowcount


def mark_sent(conn: Connection, message_ids: dict[int, str | None], *, now: datetime) -> int:
    """Records delivery row by row (each with its own provider message id)."""
    if not message_ids:
        return 0
    result = conn.execute(
        update(outbox)
        .where(
            outbox.c.id == bindparam("row_id"),
            or_(outbox.c.status == OutboxStatus.SENDING, outbox.c.status == OutboxStatus.UNKNOWN),
        )
        .values(
            status=OutboxStatus.SENT,
            provider_message_id=bindparam("message_id"),
            sent_at=now,
            lease_until=None,
            error=None,
            updated_at=now,
        ),
        [{"row_id": i, "message_id": m} for i, m in message_ids.items()],
    )
    return max(result.rowcount, 0)


def _claimed_by(token: str | None) -> Any:
    """The fencing condition: the row is still held by the claim ``token`` (none: any)."""
    return outbox.c.worker == token if token is not None else true()


def held(conn: Connection, ids: Iterable[int], *, token: str) -> set[int]:
    """Those of ``ids`` still in flight under the claim ``token``, locked on PostgreSQL.

    A claim that outlived its lease may find its rows requeued and taken by another
    dispatcher: its late failure, retry or "unknown" must then change nothing. Callers
    record outcomes only for the rows returned here, in the same transaction.
    """
    ids = list(ids)
    if not ids:
        return set()
    query = select(outbox.c.id).where(_among(conn, ids), _IN_FLIGHT, outbox.c.worker == token)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return set(conn.execute(query).scalars())


def mark_failed(
    conn: Connection,
    errors: dict[int, str],
    *,
    now: datetime,
    expect: tuple[str, ...],
    token: str | None = None,
) -> int:
    """Final failure (reason kept, truncated), for rows still in one of ``expect`` and,
    given a claim ``token``, still held by that claim.

    The guards matter: between reading a row and writing it, a webhook may have marked
    it sent, or another process taken it. Returns how many rows changed.
    """
    if not errors:
        return 0
    result = conn.execute(
        update(outbox)
        # OR of equalities, not IN: an expanding IN cannot run as executemany.
        .where(
            outbox.c.id == bindparam("row_id"),
            or_(*(outbox.c.status == e for e in expect)),
            _claimed_by(token),
        )
        .values(
            status=OutboxStatus.FAILED, error=bindparam("reason"), lease_until=None, updated_at=now
        ),
        [{"row_id": i, "reason": e[:500]} for i, e in errors.items()],
    )
    return max(result.rowcount, 0)


def mark_unknown(conn: Connection, errors: dict[int, str], *, now: datetime, token: str) -> None:
    """The request may or may not have been accepted: wait for evidence (see dispatch).

    Only rows still ``sending`` under the claim ``token`` change."""
    if errors:
        conn.execute(
            update(outbox)
            .where(
                outbox.c.id == bindparam("row_id"),
                outbox.c.status == OutboxStatus.SENDING,
                outbox.c.worker == token,
            )
            .values(
                status=OutboxStatus.UNKNOWN,
                error=bindparam("reason"),
                lease_until=None,
                updated_at=now,
            ),
            [{"row_id": i, "reason": e[:500]} for i, e in errors.items()],
        )


def requeue(
    conn: Connection,
    due: dict[int, datetime],
    *,
    now: datetime,
    expect: str,
    error: str | None = None,
    count_attempt: bool = False,
    token: str | None = None,
) -> int:
    """Back to the queue, each row at its own new due time (backoff, window, 429).

    Only rows still in status ``expect`` move, and given a claim ``token`` only rows
    that claim still holds (see :func:`mark_failed` and :func:`held` for why). One
    statement per distinct due time: rows deferred to a window share their zone's time.
    ``count_attempt`` counts a failed attempt that never reached ``sending``.
    """
    by_due: dict[datetime, list[int]] = {}
    for row_id, when in due.items():
        by_due.setdefault(when, []).append(row_id)
    attempts = outbox.c.attempts + 1 if count_attempt else outbox.c.attempts
    moved = 0
    for when, ids in by_due.items():
        moved += conn.execute(
            update(outbox)
            .where(_among(conn, ids), outbox.c.status == expect, _claimed_by(token))
            .values(
                status=OutboxStatus.QUEUED,
                due_at=when,
                lease_until=None,
                worker=None,
                attempts=attempts,
                error=error[:500] if error else None,
                updated_at=now,
            )
        ).rowcount
    return moved


def cancel(conn: Connection, ids: Iterable[int], *, now: datetime, reason: str) -> int:
    """Cancels rows that have not left yet (queued)."""
    ids = list(ids)
    if not ids:
        return 0
    return conn.execute(
        update(outbox)
        .where(_among(conn, ids), outbox.c.status == OutboxStatus.QUEUED)
        .values(status=OutboxStatus.CANCELLED, error=reason, lease_until=None, updated_at=now)
    ).rowcount


def expire_leases(conn: Connection, *, now: datetime) -> int:
    """Rows whose worker vanished mid-send: ``sending`` -> ``unknown`` (may have left).

    Found through the claims whose lease ran out (see ``store.claims``): each turns the
    rows it still holds ``unknown``, and ends.
    """
    moved = 0
    for token, ids in claims.expired(conn, now=now):
        moved += conn.execute(
            update(outbox)
            .where(_among(conn, ids), outbox.c.status == OutboxStatus.SENDING, _claimed_by(token))
            .values(status=OutboxStatus.UNKNOWN, lease_until=None, updated_at=now)
        ).rowcount
        release(conn, token)
    return moved


def sending(conn: Connection) -> int:
    """How many rows are ``sending`` now: read through the live claims, since no index
    holds them and the outbox may hold millions of rows."""
    ids = claims.claimed_ids(conn)
    if not ids:
        return 0
    query = select(func.count()).where(_among(conn, ids), outbox.c.status == OutboxStatus.SENDING)
    return int(conn.execute(query).scalar_one())


def in_flight(conn: Connection, outbox_id: int) -> Any:
    """The row's ``subscriber_id``, ``kind``, ``campaign`` and ``step`` while it is still
    ``sending`` or ``unknown``; ``None`` once settled (evidence of a send came twice)."""
    return conn.execute(
        select(outbox.c.subscriber_id, outbox.c.kind, outbox.c.campaign, outbox.c.step).where(
            outbox.c.id == outbox_id,
            outbox.c.status.in_((OutboxStatus.SENDING, OutboxStatus.UNKNOWN)),
        )
    ).first()


def unknown_rows(
    conn: Connection, *, before: datetime, after_id: int = 0, limit: int = 1000
) -> list[Any]:
    """Rows whose outcome is unknown since ``before`` or earlier, by id after ``after_id``,
    locked on PostgreSQL.

    SKIP LOCKED: a second housekeeper (or a webhook applying an event) never works on
    the same row at the same time.
    """
    query = (
        select(
            outbox.c.id,
            outbox.c.subscriber_id,
            outbox.c.kind,
            outbox.c.campaign,
            outbox.c.step,
            outbox.c.updated_at,
        )
        .where(
            outbox.c.unknown_since <= before,  # the index of unknown rows (schema.outbox)
            outbox.c.id > after_id,
        )
        .order_by(outbox.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(conn.execute(query))


def latest_request_with_events(
    conn: Connection, *, received_by: datetime, since: datetime
) -> datetime | None:
    """The latest send time, after ``since``, of a row whose provider events arrived by
    ``received_by``: evidence that requests sent up to then were accepted and reported.

    Only asked when rows are ``unknown`` (rare), so a scan of recent events is fine.
    """
    return conn.execute(
        select(func.max(outbox.c.sent_at))
        .select_from(webhook_events.join(outbox, outbox.c.id == webhook_events.c.outbox_id))
        .where(
            webhook_events.c.received_at <= received_by,
            webhook_events.c.received_at >= since,
            outbox.c.sent_at > since,
        )
    ).scalar()
