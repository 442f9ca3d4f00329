"""Named operations on the suppression list: addresses that must never be mailed.

The list holds no addresses, only :func:`nurture.tokens.email_hash` of each (an HMAC
under a secret key), so it survives erasure without keeping personal data. New
entries are hashed with the newest key; lookups try every key in ``SECRET_KEYS``, so a
key rotation keeps every older entry working for as long as its key stays listed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, select, update

from nurture.settings import Settings
from nurture.store.schema import suppressions
from nurture.store.upsert import insert_ignore
from nurture.tokens import email_hash, email_hashes

#: Why an address is suppressed (the ``reason`` column).
REASONS = ("unsubscribe", "bounce", "dropped", "spamreport", "erased", "manual")


@dataclass(frozen=True)
class Suppression:
    """One entry: which hash matched, why, and since when."""

    email_hash: str
    reason: str
    created_at: datetime


def lookup(conn: Connection, settings: Settings, email: str) -> Suppression | None:
    """The entry for ``email`` under any key, or ``None``; the oldest entry wins."""
    rows = conn.execute(
        select(suppressions.c.email_hash, suppressions.c.reason, suppressions.c.created_at)
        .where(suppressions.c.email_hash.in_(email_hashes(settings, email)))
        .order_by(suppressions.c.created_at)
    ).all()
    if not rows:
        return None
    first = rows[0]
    return Suppression(first.email_hash, first.reason, first.created_at)


def is_suppressed(conn: Connection, settings: Settings, email: str) -> bool:
    """Whether ``email`` is on the suppression list (under any of the secret keys)."""
    return lookup(conn, settings, email) is not None


def add(
    conn: Connection,
    settings: Settings,
    email: str,
    *,
    reason: str,
    now: datetime,
    replace_reason: bool = False,
) -> bool:
    """Suppresses ``email`` (hashed with the newest key); ``True`` when a new entry was made.

    An address already suppressed under any key keeps its entry and its date;
    ``replace_reason`` overwrites the recorded reason (an erasure outranks an earlier
    unsubscribe, so ``show`` reports what actually happened last).
    """
    if reason not in REASONS:
        raise ValueError(f"unknown suppression reason {reason!r}")
    existing = lookup(conn, settings, email)
    if existing is not None:
        if replace_reason and existing.reason != reason:
            conn.execute(
                update(suppressions)
                .where(suppressions.c.email_hash == existing.email_hash)
                .values(reason=reason)
            )
        return False
    newest = settings.secret_key_values()[0]
    result = conn.execute(
        insert_ignore(conn, suppressions).values(
            email_hash=email_hash(newest, email), reason=reason, created_at=now
        )
    )
    return result.rowcount == 1


def remove(conn: Connection, settings: Settings, email: str) -> int:
    """Lifts the suppression of ``email`` under every key (only after a fresh opt-in)."""
    return conn.execute(
        delete(suppressions).where(suppressions.c.email_hash.in_(email_hashes(settings, email)))
    ).rowcount


def suppressed_among(conn: Connection, settings: Settings, emails: Iterable[str]) -> set[str]:
    """The addresses of ``emails`` that are suppressed: one query for a whole batch."""
    by_hash: dict[str, str] = {}
    for address in emails:
        for digest in email_hashes(settings, address):
            by_hash[digest] = address
    if not by_hash:
        return set()
    found = conn.execute(
        select(suppressions.c.email_hash).where(suppressions.c.email_hash.in_(list(by_hash)))
    ).scalars()
    return {by_hash[digest] for digest in found}
