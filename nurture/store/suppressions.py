"""Named operations on the suppression list: addresses that must never be mailed.

The list holds no addresses, only :func:`nurture.mail.addresses.email_hash` of each (an HMAC
under a key), so it survives erasure without keeping personal data. An entry can only
be found again with the key that hashed it, so that key must outlive every rotation:

* New entries are hashed with ``SUPPRESSION_KEY`` when it is set (a key that never
  rotates, since it signs nothing), else with the *oldest* of ``SECRET_KEYS``. Rotation
  adds keys at the front, so without ``SUPPRESSION_KEY`` every entry shares the first
  key ever configured, which must then stay at the end of the list for good.
* Lookups try ``SUPPRESSION_KEY`` and every listed secret key, so entries written under
  an earlier rule (or before ``SUPPRESSION_KEY`` was set) are still found while their
  key is listed; :func:`add` moves such an entry to the current key when it meets it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, select, update

from nurture.mail.addresses import email_hash, email_hashes, suppression_keys
from nurture.settings import Settings
from nurture.store.schema import suppressions
from nurture.store.upsert import insert_ignored

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
    """Suppresses ``email``; ``True`` when a new entry was made.

    An address already suppressed under any key keeps its entry and its date (moved to
    the current key if an older one hashed it, so the entry outlives that key);
    ``replace_reason`` overwrites the recorded reason (an erasure outranks an earlier
    unsubscribe, so ``show`` reports what actually happened last).
    """
    if reason not in REASONS:
        raise ValueError(f"unknown suppression reason {reason!r}")
    current = email_hash(suppression_keys(settings)[0], email)
    existing = lookup(conn, settings, email)
    if existing is not None:
        values: dict[str, str] = {}
        if replace_reason and existing.reason != reason:
            values["reason"] = reason
        if existing.email_hash != current and not _exists(conn, current):
            values["email_hash"] = current
        if values:
            conn.execute(
                update(suppressions)
                .where(suppressions.c.email_hash == existing.email_hash)
                .values(values)
            )
        return False
    row = {"email_hash": current, "reason": reason, "created_at": now}
    return insert_ignored(conn, suppressions, row) == 1  # not rowcount: -1 through psycopg


def _exists(conn: Connection, digest: str) -> bool:
    found = conn.execute(
        select(suppressions.c.email_hash).where(suppressions.c.email_hash == digest)
    ).first()
    return found is not None


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
