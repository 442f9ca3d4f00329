"""Named operations on consent records: the evidence of every opt-in and every change.

A record says who (``subscriber_id``), what (``action``: opt_in, confirm, withdraw,
preferences, import, erase, resubscribe), through which ``channel`` (form, json, link,
one_click, webhook, mailto, preferences, import, cli, retention, studio), when, and
under which consent wording and version, with the form's URL, IP and user agent for an
opt-in. Records outlive an erasure (``subscriber_id`` becomes NULL, personal fields are
cleared), as proof of what was done; the IP is dropped after ``IP_RETENTION_DAYS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from nurture.settings import Settings
from nurture.store.schema import consents

ACTIONS = ("opt_in", "confirm", "withdraw", "preferences", "import", "erase", "resubscribe")
CHANNELS = (
    "form",
    "json",
    "link",
    "one_click",
    "webhook",
    "mailto",
    "preferences",
    "import",
    "cli",
    "retention",  # erased by housekeeping after RETENTION_UNSUBSCRIBED_DAYS
    "studio",  # the therapist, from the studio's subscriber lookup
)

# Column widths, so that a long user agent or URL is cut rather than refused.
_LIMITS = {"campaign": 100, "form_url": 500, "ip": 64, "user_agent": 300, "wording_version": 40}


def _row(
    *,
    subscriber_id: int | None,
    action: str,
    channel: str,
    now: datetime,
    wording: str | None = None,
    wording_version: str | None = None,
    campaign: str | None = None,
    form_url: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    if action not in ACTIONS:
        raise ValueError(f"unknown consent action {action!r}")
    if channel not in CHANNELS:
        raise ValueError(f"unknown consent channel {channel!r}")
    row: dict[str, Any] = {
        "subscriber_id": subscriber_id,
        "action": action,
        "channel": channel,
        "wording": wording,
        "wording_version": wording_version,
        "campaign": campaign,
        "form_url": form_url,
        "ip": ip,
        "user_agent": user_agent,
        "detail": detail,
        "created_at": now,
    }
    for name, value in row.items():
        if isinstance(value, str):
            row[name] = _storable(value)[: _LIMITS.get(name)]
    return row


def _storable(value: str) -> str:
    """``value`` without what the database or UTF-8 refuse (NUL, lone surrogates).

    The callers clean what they record; this is the last line, so that evidence is
    never lost to a refused insert.
    """
    if not any(_refused(ch) for ch in value):
        return value
    return "".join("\ufffd" if _refused(ch) else ch for ch in value)


def _refused(ch: str) -> bool:
    return ch == "\x00" or "\ud800" <= ch <= "\udfff"


def record(
    conn: Connection,
    *,
    subscriber_id: int | None,
    action: str,
    channel: str,
    now: datetime,
    wording: str | None = None,
    wording_version: str | None = None,
    campaign: str | None = None,
    form_url: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    detail: str | None = None,
) -> None:
    """Adds one consent record; ``action`` and ``channel`` must be among the known ones."""
    # The values come with the execution, not in the statement: building an insert
    # with its values costs more than SQLite takes to run it, once per sign-up.
    conn.execute(
        insert(consents),
        _row(
            subscriber_id=subscriber_id,
            action=action,
            channel=channel,
            now=now,
            wording=wording,
            wording_version=wording_version,
            campaign=campaign,
            form_url=form_url,
            ip=ip,
            user_agent=user_agent,
            detail=detail,
        ),
    )


def record_many(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Adds many records at once (an import batch); each dict takes :func:`record`'s names."""
    if rows:
        conn.execute(insert(consents), [_row(**row) for row in rows])


def of_subscriber(conn: Connection, subscriber_id: int) -> list[dict[str, Any]]:
    """Every record of one subscriber, oldest first, as plain dicts."""
    rows = conn.execute(
        select(consents)
        .where(consents.c.subscriber_id == subscriber_id)
        .order_by(consents.c.created_at, consents.c.id)
    )
    return [dict(row._mapping) for row in rows]


def last_at(conn: Connection, subscriber_id: int, action: str) -> datetime | None:
    """When a subscriber's latest record of ``action`` was made, or ``None``.

    The records outlast the subscriber row's own fields: a confirmation clears
    ``unsubscribed_at``, but the ``withdraw`` record stays.
    """
    found: datetime | None = conn.execute(
        select(consents.c.created_at)
        .where(consents.c.subscriber_id == subscriber_id, consents.c.action == action)
        .order_by(consents.c.created_at.desc())
        .limit(1)
    ).scalar()
    return found


def anonymise(conn: Connection, subscriber_id: int) -> int:
    """Clears the personal fields (IP, user agent, form URL) of a subscriber's records."""
    return conn.execute(
        update(consents)
        .where(consents.c.subscriber_id == subscriber_id)
        .values(ip=None, user_agent=None, form_url=None)
    ).rowcount


def purge_expired_ips(conn: Connection, settings: Settings, now: datetime) -> int:
    """Drops the IP of every record older than ``IP_RETENTION_DAYS``; returns how many.

    Housekeeping calls it daily; the rest of the record stays as evidence.
    """
    cutoff = now - timedelta(days=settings.ip_retention_days)
    return conn.execute(
        update(consents)
        .where(consents.c.created_at < cutoff, consents.c.ip.is_not(None))
        .values(ip=None)
    ).rowcount
