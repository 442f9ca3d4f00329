"""The numbers of ``nurture stats``, ``GET /studio/api/stats`` and the studio dashboard.

:func:`collect` is the one place they are computed, so the three always agree. Every
figure is a count over many people: who did what is never returned. Counts outlive the
rows they came from: mail older than ``RETENTION_SENT_DAYS`` is read from
``outbox_daily`` and the sequences of erased subscribers from ``sequence_stops``
(see :mod:`nurture.store.folding`), so retention never changes a total.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, func, select

from nurture.store import database, goals, links
from nurture.store import outbox as outbox_ops
from nurture.store.schema import (
    consents,
    enrolments,
    newsletter_runs,
    outbox,
    outbox_daily,
    sequence_stops,
    subscribers,
)
from nurture.store.statuses import (
    EnrolmentStatus,
    OutboxKind,
    OutboxStatus,
    SubscriberStatus,
)

#: How many weeks the weekly series covers, the current one included.
WEEKS = 12
#: A newsletter's unsubscribes are those in this window after it went out.
AFTER_NEWSLETTER = timedelta(days=7)
#: Failed sends are reported for this long (the queue's recent health).
FAILED_WINDOW = timedelta(days=30)
#: The pseudo-campaign newsletters are addressed under (``campaigns.model.NEWSLETTERS``).
NEWSLETTERS = "newsletters"
#: Consent actions counted in the weekly series.
WEEKLY_ACTIONS = {"opt_in": "signups", "confirm": "confirmations", "withdraw": "unsubscribes"}
#: The goal the dashboard counts per step (``stop_when: [booked]``).
BOOKED = "booked"
_ADDRESS = re.compile(r"[^\s@<>\"'(),;:]+@[^\s@<>\"'(),;:]+")


class _Step(Protocol):
    @property
    def slug(self) -> str: ...


class _Campaign(Protocol):
    @property
    def steps(self) -> Sequence[_Step]: ...


class CatalogueLike(Protocol):
    """What :func:`read` needs of a :class:`~nurture.campaigns.Catalogue`."""

    @property
    def campaigns(self) -> Mapping[str, _Campaign]: ...

    @property
    def newsletters(self) -> Mapping[str, Any]: ...


def read(engine: Engine, catalogue: CatalogueLike, *, now: datetime) -> dict[str, Any]:
    """:func:`collect` on a read-only connection, with the catalogue's steps in order."""
    with database.reading(engine) as conn:
        return collect(
            conn,
            campaigns={
                slug: [step.slug for step in campaign.steps]
                for slug, campaign in catalogue.campaigns.items()
            },
            newsletters=list(catalogue.newsletters),
            now=now,
        )


def collect(
    conn: Connection,
    *,
    campaigns: Mapping[str, Sequence[str]],
    newsletters: Sequence[str],
    now: datetime,
) -> dict[str, Any]:
    """Every figure, as JSON-ready data.

    ``campaigns`` maps each sequence's slug to its step slugs in order; ``newsletters``
    lists the newsletter slugs. Steps and newsletters found in the data but no longer
    in the files are listed after them, so the totals always match what was sent. The
    shape (DESIGN.md's, plus what the dashboard needs; ``booked_after`` counts readers
    who booked after that step, the last one they had, and stopped there)::

        {"generated_at": ISO, "subscribers": {STATUS: N},
         "campaigns": {SLUG: {"steps": [{"step", "sent", "stopped_after", "clicks",
                                         "booked_after"}],
                              "stopped_before_first": N, "booked_before_first": N,
                              "booked": N}},
         "newsletters": {SLUG: {"sent", "clicks", "unsubscribes_7d", "sent_at"}},
         "weeks": [{"week": MONDAY, "signups", "confirmations", "unsubscribes"}],
         "queue": {"due", "scheduled", "sending", "unknown", "failed",
                   "failed_reasons": [{"reason", "count"}]}}
    """
    sent = _sent_per_step(conn)
    clicks = links.clicks_per_step(conn)
    return {
        "generated_at": now.astimezone(UTC).isoformat(),
        "subscribers": _subscribers(conn),
        "campaigns": _campaigns(conn, campaigns, sent, clicks),
        "newsletters": _newsletters(conn, newsletters, sent, clicks),
        "weeks": _weeks(conn, now),
        "queue": _queue(conn, now),
    }


def _subscribers(conn: Connection) -> dict[str, int]:
    query = select(subscribers.c.status, func.count()).group_by(subscribers.c.status)
    found: dict[str, int] = {str(s): int(n) for s, n in conn.execute(query)}
    return {str(s): found.pop(str(s), 0) for s in SubscriberStatus} | found


def _sent_per_step(conn: Connection) -> Counter[tuple[str, str]]:
    """Sent marketing emails by (campaign, step): live rows plus folded counts."""
    marketing = (OutboxKind.SEQUENCE, OutboxKind.NEWSLETTER)
    live = (
        select(outbox.c.campaign, outbox.c.step, func.count())
        .where(outbox.c.status == OutboxStatus.SENT, outbox.c.kind.in_(marketing))
        .group_by(outbox.c.campaign, outbox.c.step)
    )
    folded = (
        select(outbox_daily.c.campaign, outbox_daily.c.step, func.sum(outbox_daily.c.count))
        .where(outbox_daily.c.status == OutboxStatus.SENT, outbox_daily.c.kind.in_(marketing))
        .group_by(outbox_daily.c.campaign, outbox_daily.c.step)
    )
    counts: Counter[tuple[str, str]] = Counter()
    for query in (live, folded):
        for campaign, step, n in conn.execute(query):
            counts[(campaign, step)] += int(n)
    return counts


def _stops(conn: Connection) -> Counter[tuple[str, int]]:
    """Readers who left a sequence, by (campaign, steps received).

    Leaving is unsubscribing (from everything, or a bounce or complaint, which
    unsubscribe too): a stopped enrolment of an unsubscribed reader. Stops for other
    reasons (a booking, a refused address) are not leaving and are not counted.
    """
    live = (
        select(enrolments.c.campaign, enrolments.c.next_step, func.count())
        .join(subscribers, subscribers.c.id == enrolments.c.subscriber_id)
        .where(
            enrolments.c.status == EnrolmentStatus.STOPPED,
            subscribers.c.status == SubscriberStatus.UNSUBSCRIBED,
        )
        .group_by(enrolments.c.campaign, enrolments.c.next_step)
    )
    folded = select(
        sequence_stops.c.campaign, sequence_stops.c.received, func.sum(sequence_stops.c.count)
    ).group_by(sequence_stops.c.campaign, sequence_stops.c.received)
    counts: Counter[tuple[str, int]] = Counter()
    for query in (live, folded):
        for campaign, received, n in conn.execute(query):
            counts[(campaign, int(received))] += int(n)
    return counts


def _campaigns(
    conn: Connection,
    campaigns: Mapping[str, Sequence[str]],
    sent: Counter[tuple[str, str]],
    clicks: dict[tuple[str, str], int],
) -> dict[str, Any]:
    stops = _stops(conn)
    booked = goals.goals_after_step(conn, BOOKED)
    order = {slug: list(steps) for slug, steps in campaigns.items()}
    for campaign, step in (*sent, *clicks):
        if campaign != NEWSLETTERS and step not in order.setdefault(campaign, []):
            order[campaign].append(step)
    out: dict[str, Any] = {}
    for slug, steps in order.items():
        out[slug] = {
            "steps": [
                {
                    "step": step,
                    "sent": sent.get((slug, step), 0),
                    "stopped_after": stops.get((slug, index + 1), 0),
                    "clicks": clicks.get((slug, step), 0),
                    "booked_after": booked.get(slug, {}).get(index + 1, 0),
                }
                for index, step in enumerate(steps)
            ],
            "stopped_before_first": stops.get((slug, 0), 0),
            "booked_before_first": booked.get(slug, {}).get(0, 0),
            # Every booking, those after steps since removed from the files included.
            "booked": sum(booked.get(slug, {}).values()),
        }
    return out


def _newsletters(
    conn: Connection,
    slugs: Sequence[str],
    sent: Counter[tuple[str, str]],
    clicks: dict[tuple[str, str], int],
) -> dict[str, Any]:
    campaign = NEWSLETTERS
    query = select(newsletter_runs.c.slug, newsletter_runs.c.planned_at)
    runs: dict[str, datetime] = {slug: at for slug, at in conn.execute(query)}
    order = list(slugs)
    for c, step in (*sent, *clicks, *((campaign, s) for s in runs)):
        if c == campaign and step not in order:
            order.append(step)
    out: dict[str, Any] = {}
    for slug in order:
        started = runs.get(slug)
        out[slug] = {
            "sent": sent.get((campaign, slug), 0),
            "clicks": clicks.get((campaign, slug), 0),
            "unsubscribes_7d": _withdrawals(conn, started) if started else 0,
            "sent_at": started.isoformat() if started else None,
        }
    return out


def _withdrawals(conn: Connection, start: datetime) -> int:
    query = select(func.count()).where(
        consents.c.action == "withdraw",
        consents.c.created_at >= start,
        consents.c.created_at < start + AFTER_NEWSLETTER,
    )
    return int(conn.execute(query).scalar_one())


def _weeks(conn: Connection, now: datetime) -> list[dict[str, Any]]:
    """Sign-ups, confirmations and unsubscribes per week (Monday to Sunday, UTC)."""
    this_monday = now.astimezone(UTC).date() - timedelta(days=now.astimezone(UTC).weekday())
    first = this_monday - timedelta(weeks=WEEKS - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    day = func.date(consents.c.created_at)
    query = (
        select(consents.c.action, day, func.count())
        .where(consents.c.action.in_(list(WEEKLY_ACTIONS)), consents.c.created_at >= start)
        .group_by(consents.c.action, day)
    )
    weeks = {
        first + timedelta(weeks=i): dict.fromkeys(WEEKLY_ACTIONS.values(), 0) for i in range(WEEKS)
    }
    for action, on, n in conn.execute(query):
        on = on if isinstance(on, date) else date.fromisoformat(str(on))
        monday = on - timedelta(days=on.weekday())
        if monday in weeks:
            weeks[monday][WEEKLY_ACTIONS[action]] += int(n)
    return [{"week": monday.isoformat(), **counts} for monday, counts in weeks.items()]


def _queue(conn: Connection, now: datetime) -> dict[str, Any]:
    """What waits and what went wrong: due now, scheduled later, in flight, failed."""
    # Queued, unknown and sending through the partial indexes and the claims, never a
    # scan of the outbox; failures of the last days are read from the rows themselves.
    queued_due = outbox.c.queued_due
    due = conn.execute(select(func.count()).where(queued_due <= now)).scalar_one()
    later = conn.execute(select(func.count()).where(queued_due > now)).scalar_one()
    unknown = select(func.count()).where(outbox.c.unknown_since.is_not(None))
    reasons = conn.execute(
        select(outbox.c.error, func.count())
        .where(outbox.c.status == OutboxStatus.FAILED, outbox.c.updated_at >= now - FAILED_WINDOW)
        .group_by(outbox.c.error)
    )
    grouped: Counter[str] = Counter()
    for error, n in reasons:
        grouped[reason_text(error)] += int(n)
    return {
        "due": int(due),
        "scheduled": int(later),
        "sending": outbox_ops.sending(conn),
        "unknown": int(conn.execute(unknown).scalar_one()),
        "failed": sum(grouped.values()),
        "failed_reasons": [{"reason": r, "count": n} for r, n in grouped.most_common(8)],
    }


def sends_by_state(conn: Connection) -> dict[str, int]:
    """Live outbox rows by status (the ``nurture_outbox_rows`` gauge)."""
    query = select(outbox.c.status, func.count()).group_by(outbox.c.status)
    return {str(status): int(n) for status, n in conn.execute(query)}


def reason_text(error: str | None) -> str:
    """A failure reason safe to show: addresses masked, at most 120 characters."""
    text = _ADDRESS.sub("(an address)", error or "no reason recorded").strip()
    return text if len(text) <= 120 else text[:119] + "…"
