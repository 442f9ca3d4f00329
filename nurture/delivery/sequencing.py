"""Who is due for what, and when: pure functions, ``now`` always passed in.

Nothing here touches a clock, the database or the network, so every rule about time
(delays, send windows, time zones, DST, pauses, expiry) is tested exhaustively and fast.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Window = tuple[time, time]
#: Weekdays a message may go out on (Monday 0), in the reader's zone; ``None``: any day.
Days = frozenset[int] | None


def zone_for(name: str | None, practice: ZoneInfo) -> ZoneInfo:
    """The subscriber's zone, or the practice's when theirs is unknown or invalid."""
    if not name:
        return practice
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return practice


def _at(day: date, moment: time, zone: ZoneInfo) -> datetime:
    """``day`` at local ``moment`` in ``zone``, as UTC.

    A local time that does not exist (skipped by a spring-forward change) is read with
    the offset in force before the change, which lands just after the gap: never early.
    """
    local = datetime.combine(day, moment, tzinfo=zone)
    as_utc = local.astimezone(UTC)
    if as_utc.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        # Non-existent wall time: take the later reading so we are never before the window.
        as_utc = local.replace(fold=1).astimezone(UTC)
        as_utc = max(as_utc, local.replace(fold=0).astimezone(UTC))
    return as_utc


def in_window(moment: datetime, zone: ZoneInfo, window: Window, days: Days = None) -> bool:
    """Is ``moment`` inside the subscriber's local send window ``[start, end)``, on one
    of ``days`` of their own calendar?"""
    local = moment.astimezone(zone)
    start, end = window
    return start <= local.time() < end and (days is None or local.weekday() in days)


def into_window(due: datetime, zone: ZoneInfo, window: Window, days: Days = None) -> datetime:
    """The first instant at or after ``due`` inside the local send window, on an
    allowed day. Days are the reader's local dates, so a DST change in between moves
    the UTC instant, never the local opening time."""
    if in_window(due, zone, window, days):
        return due
    start, _ = window
    local_day = due.astimezone(zone).date()
    for ahead in range(8):  # within a week every allowed weekday comes round once
        day = local_day + timedelta(days=ahead)
        if days is not None and day.weekday() not in days:
            continue
        candidate = _at(day, start, zone)
        if candidate > due:
            return candidate
    raise ValueError("send days name no weekday")


def send_time(
    due: datetime,
    *,
    zone: ZoneInfo,
    window: Window,
    paused_until: datetime | None = None,
    days: Days = None,
) -> datetime:
    """When a message due at ``due`` may go out: after any pause, inside the window, on
    an allowed day."""
    if paused_until is not None and paused_until > due:
        due = paused_until
    return into_window(due, zone, window, days)


def next_step_due(
    sent_at: datetime, delays: Sequence[timedelta], next_index: int
) -> datetime | None:
    """Due time of step ``next_index`` after the previous one was sent; None when finished.

    Each later step is due ``delay`` after the previous step was actually *sent* (not
    planned), so a delivery that waited for a window or a retry pushes the rest back
    instead of bunching them up.
    """
    if next_index >= len(delays):
        return None
    return sent_at + delays[next_index]


def newsletter_open(now: datetime, send_at: datetime, not_after: datetime | None) -> bool:
    """May a newsletter be planned at ``now``? From ``send_at`` until (excluding) ``not_after``."""
    return send_at <= now and (not_after is None or now < not_after)


def retry_delay(
    attempt: int, *, base: float, cap: float = 3600.0, rng: random.Random | None = None
) -> float:
    """Seconds to wait before attempt ``attempt + 1``: exponential with equal jitter.

    Equal jitter (a uniform draw between half the exponential ceiling and all of it)
    spreads the retries of many rows refused by one outage, so they do not return as one
    wave, while every row still waits at least half its backoff: full jitter (a draw
    from zero) would let some rows retry at once, into the same outage. Never under one
    second.
    """
    ceiling = min(cap, base * (2 ** max(attempt - 1, 0)))
    draw = (rng or random).uniform(0.5, 1.0)
    return max(1.0, ceiling * draw)


def utc(moment: datetime) -> datetime:
    """Normalises an aware datetime to UTC; a naive one is refused."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: nurture works in aware UTC")
    return moment.astimezone(UTC)
