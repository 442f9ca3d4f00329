"""Planning: turn due sequence steps and open newsletters into outbox rows.

Planning only ever *inserts* outbox rows, guarded by the unique constraint on
(subscriber, campaign, step), so running it twice, late, or from two processes at once
never plans a message twice. Each due time is moved into the subscriber's send window
in their own time zone here; dispatch checks the window again before sending.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, literal, or_, select, text, true, update

from nurture.campaigns import Catalogue, Newsletter
from nurture.delivery import outcomes, sequencing
from nurture.logs import mask_email
from nurture.settings import Settings
from nurture.store import database
from nurture.store import enrolments as enrolment_ops
from nurture.store import outbox as outbox_ops
from nurture.store.schema import newsletter_runs, outbox, subscribers
from nurture.store.statuses import EnrolmentStatus, OutboxKind, OutboxStatus, SubscriberStatus
from nurture.store.upsert import insert_ignore

log = logging.getLogger(__name__)
NEWSLETTERS = "newsletters"


@dataclass
class PlanReport:
    sequence_rows: int = 0
    newsletter_rows: int = 0
    completed: int = 0


def plan(engine: Engine, catalogue: Catalogue, settings: Settings, *, now: datetime) -> PlanReport:
    """One full planning pass as of ``now``: sequences, then newsletters."""
    report = plan_sequences(engine, catalogue, settings, now=now)
    report.newsletter_rows = plan_newsletters(engine, catalogue, settings, now=now)
    return report


STOP, COMPLETE = "stop", "complete"


def decide(enrolment: Any, catalogue: Catalogue, settings: Settings) -> dict[str, Any] | str:
    """What to do with one due enrolment: an outbox row to insert, ``STOP`` or ``COMPLETE``."""
    campaign = catalogue.campaigns.get(enrolment.campaign)
    if campaign is None:
        # The therapist removed the campaign folder: the sequence ends here.
        log.warning("enrolment in unknown campaign", extra={"campaign": enrolment.campaign})
        return STOP
    if enrolment.next_step >= len(campaign.steps):
        return COMPLETE
    step = campaign.steps[enrolment.next_step]
    due_at = sequencing.send_time(
        enrolment.next_due_at,
        zone=sequencing.zone_for(enrolment.timezone, settings.zone),
        window=campaign.send_window or settings.window,
        paused_until=enrolment.paused_until,
    )
    return {
        "subscriber_id": enrolment.subscriber_id,
        "kind": OutboxKind.SEQUENCE,
        "campaign": campaign.slug,
        "step": step.slug,
        "due_at": due_at,
    }


def plan_sequences(
    engine: Engine, catalogue: Catalogue, settings: Settings, *, now: datetime, batch: int = 1000
) -> PlanReport:
    """Queues the next step of every active enrolment that is due by ``now``."""
    report = PlanReport()
    while True:
        with engine.begin() as conn:
            due = enrolment_ops.due_for_planning(conn, now=now, limit=batch)
            if not due:
                return report
            rows, planned, completed, stopped = [], [], [], []
            for e in due:
                decision = decide(e, catalogue, settings)
                if decision == STOP:
                    stopped.append(e.id)
                elif decision == COMPLETE:
                    completed.append(e.id)
                else:
                    assert isinstance(decision, dict)
                    rows.append(decision)
                    planned.append(e.id)
            inserted = outbox_ops.enqueue_keys(conn, rows, now=now)
            report.sequence_rows += len(inserted)
            enrolment_ops.mark_planned(conn, planned, now=now)
            _settle_conflicts(conn, catalogue, rows, inserted, now=now)
            enrolment_ops.set_status(conn, completed, EnrolmentStatus.COMPLETED, now=now)
            enrolment_ops.set_status(conn, stopped, EnrolmentStatus.STOPPED, now=now)
            report.completed += len(completed)
        if len(due) < batch:
            return report


def _settle_conflicts(
    conn: Connection,
    catalogue: Catalogue,
    rows: list[dict[str, Any]],
    inserted: set[tuple[int, str, str]],
    *,
    now: datetime,
) -> None:
    """A step that was already in the outbox (re-confirmed after a stop, a reordered
    campaign): never a second row, but the enrolment must not be left waiting for it.
    Sent or failed: move on past it. Cancelled: queue it again. Waiting: nothing to do.
    """
    keys = [(r["subscriber_id"], r["campaign"], r["step"]) for r in rows]
    clashes = [k for k in keys if k not in inserted]
    if not clashes:
        return
    due = {(r["subscriber_id"], r["campaign"], r["step"]): r["due_at"] for r in rows}
    for row in outbox_ops.existing(conn, clashes):
        if row.status in (OutboxStatus.SENT, OutboxStatus.FAILED):
            outcomes.moved_on(conn, catalogue, [row], row.sent_at or now)
        elif row.status == OutboxStatus.CANCELLED:
            key = (row.subscriber_id, row.campaign, row.step)
            outbox_ops.requeue(conn, {row.id: due[key]}, now=now, expect=OutboxStatus.CANCELLED)


def plan_newsletters(
    engine: Engine, catalogue: Catalogue, settings: Settings, *, now: datetime
) -> int:
    """Queues each open newsletter once for every confirmed subscriber who wants them."""
    total = 0
    for newsletter in catalogue.newsletters.values():
        if sequencing.newsletter_open(now, newsletter.send_at, newsletter.not_after):
            total += _plan_newsletter(engine, newsletter, settings, now=now)
    return total


#: Subscribers per planning transaction: short enough that SQLite's single write lock
#: is never held for long (sign-ups and unsubscribes wait behind it), large enough that
#: the per-statement cost vanishes.
CHUNK = 50_000
_COLUMNS = (
    "subscriber_id", "kind", "campaign", "step", "due_at", "expires_at", "status",
    "attempts", "created_at", "updated_at",
)  # fmt: skip


def _plan_newsletter(
    engine: Engine, newsletter: Newsletter, settings: Settings, *, now: datetime
) -> int:
    """Plans one newsletter, chunk by chunk of the audience; returns the rows added.

    The recipients are never loaded into memory: the database copies them into the
    outbox, one INSERT ... SELECT per time zone group of each chunk, each group with its
    own window-adjusted due time. The ``newsletter_runs`` row is the lock and the
    cursor: every chunk locks it, reads where to start, and moves it on in the same
    transaction, so two planners never plan the same chunk and a crash resumes where it
    stopped. Each committed chunk is sendable at once.
    """
    audience = and_(
        subscribers.c.status == SubscriberStatus.CONFIRMED,
        subscribers.c.newsletters == true(),
        subscribers.c.confirmed_at <= newsletter.send_at,
    )
    with engine.begin() as conn:
        conn.execute(
            insert_ignore(conn, newsletter_runs).values(
                slug=newsletter.slug, planned_at=now, recipients=0, cursor=0, done=False
            )
        )
    planned = 0
    while True:
        with engine.begin() as conn:
            run = conn.execute(
                select(newsletter_runs.c.cursor, newsletter_runs.c.done)
                .where(newsletter_runs.c.slug == newsletter.slug)
                .with_for_update()
            ).one()
            if run.done:
                break
            ids = select(subscribers.c.id).where(audience, subscribers.c.id > run.cursor)
            last = conn.execute(
                select(func.max(ids.order_by(subscribers.c.id).limit(CHUNK).subquery().c.id))
            ).scalar()
            if last is None:
                conn.execute(
                    newsletter_runs.update()
                    .where(newsletter_runs.c.slug == newsletter.slug)
                    .values(done=True)
                )
                break
            added = _plan_chunk(conn, newsletter, settings, audience, run.cursor, last, now=now)
            planned += added
            conn.execute(
                newsletter_runs.update()
                .where(newsletter_runs.c.slug == newsletter.slug)
                .values(cursor=last, recipients=newsletter_runs.c.recipients + added)
            )
        if planned == added:  # after the first chunk: dispatch starts on fresh statistics
            _analyze(engine)
    if planned:
        with engine.begin() as conn:
            _respect_pauses(conn, newsletter, settings, now=now)
    if planned:
        _analyze(engine)
    log.info("newsletter planned", extra={"newsletter": newsletter.slug, "rows": planned})
    return planned


def _analyze(engine: Engine) -> None:
    """PostgreSQL: fresh statistics for the outbox after a newsletter added rows.

    A newsletter adds up to a million rows at once; until autovacuum catches up, the
    planner would keep plans made for an empty queue (sorting the whole queue to take
    a batch of a thousand).
    """
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE outbox"))


def _plan_chunk(
    conn: Connection,
    newsletter: Newsletter,
    settings: Settings,
    audience: Any,
    first: int,
    last: int,
    *,
    now: datetime,
) -> int:
    """Inserts the audience with ids in (first, last], one INSERT ... SELECT per due time."""
    chunk = and_(audience, subscribers.c.id > first, subscribers.c.id <= last)
    zones = conn.execute(select(subscribers.c.timezone).where(chunk).distinct()).scalars()
    by_due: dict[datetime, list[str | None]] = defaultdict(list)
    for name in zones:
        zone = sequencing.zone_for(name, settings.zone)
        by_due[sequencing.into_window(newsletter.send_at, zone, settings.window)].append(name)
    for due_at, names in by_due.items():
        if newsletter.not_after is not None and due_at >= newsletter.not_after:
            continue  # their window opens only after the newsletter expires
        named = [n for n in names if n is not None]
        matches = [subscribers.c.timezone.in_(named)] if named else []
        if None in names:
            matches.append(subscribers.c.timezone.is_(None))
        source = select(
            subscribers.c.id,
            literal(OutboxKind.NEWSLETTER.value),
            literal(NEWSLETTERS),
            literal(newsletter.slug),
            literal(due_at, outbox.c.due_at.type),
            literal(newsletter.not_after, outbox.c.expires_at.type),
            literal(OutboxStatus.QUEUED.value),
            literal(0),
            literal(now, outbox.c.created_at.type),
            literal(now, outbox.c.updated_at.type),
        ).where(chunk, or_(*matches))
        conn.execute(insert_ignore(conn, outbox).from_select(_COLUMNS, source))
    # Counted, not returned (RETURNING would ship every id back; psycopg reports no
    # rowcount for inserts): the chunk's rows, a range of the unique index.
    return int(
        conn.execute(
            select(func.count()).where(
                outbox.c.subscriber_id > first,
                outbox.c.subscriber_id <= last,
                outbox.c.campaign == NEWSLETTERS,
                outbox.c.step == newsletter.slug,
            )
        ).scalar_one()
    )


def _respect_pauses(
    conn: Connection, newsletter: Newsletter, settings: Settings, *, now: datetime
) -> None:
    """Moves this newsletter's rows for paused subscribers to the end of their pause.

    Starts from the (few) paused subscribers and reaches their row through the unique
    index, rather than joining a million fresh outbox rows.
    """
    paused = conn.execute(
        select(subscribers.c.id, subscribers.c.paused_until, subscribers.c.timezone).where(
            subscribers.c.paused_until > now
        )
    ).all()
    for person in paused:
        due = sequencing.send_time(
            person.paused_until,
            zone=sequencing.zone_for(person.timezone, settings.zone),
            window=settings.window,
        )
        conn.execute(
            update(outbox)
            .where(
                outbox.c.subscriber_id == person.id,
                outbox.c.campaign == NEWSLETTERS,
                outbox.c.step == newsletter.slug,
                outbox.c.status == OutboxStatus.QUEUED,
                outbox.c.due_at < due,
            )
            .values(due_at=due, updated_at=now)
        )


@dataclass(frozen=True)
class Planned:
    """One line of ``tick --dry-run``: what would go out, when, to whom (masked)."""

    due_at: datetime
    campaign: str
    step: str
    who: str


def preview(
    engine: Engine, catalogue: Catalogue, settings: Settings, *, now: datetime, limit: int = 10_000
) -> list[Planned]:
    """What a tick at ``now`` would send, computed without changing anything.

    Already queued rows due by ``now``, the steps planning would queue and that would
    be due by then, and the newsletters that would open (counted, not listed).
    """
    items: list[Planned] = []
    with database.reading(engine) as conn:
        for row in outbox_ops.due_preview(conn, now=now, limit=limit):
            who = mask_email(row.email) if row.email else "(erased)"
            items.append(Planned(row.due_at, row.campaign, row.step, who))
        due = enrolment_ops.due_for_planning(conn, now=now, limit=limit)
        ids = [e.subscriber_id for e in due]
        emails = dict(
            conn.execute(
                select(subscribers.c.id, subscribers.c.email).where(subscribers.c.id.in_(ids))
            ).all()
        )
        for e in due:
            decision = decide(e, catalogue, settings)
            if isinstance(decision, dict) and decision["due_at"] <= now:
                who = mask_email(emails.get(e.subscriber_id, ""))
                items.append(Planned(decision["due_at"], e.campaign, decision["step"], who))
        done = set(conn.execute(select(newsletter_runs.c.slug)).scalars())
        for letter in catalogue.newsletters.values():
            if letter.slug in done or not sequencing.newsletter_open(
                now, letter.send_at, letter.not_after
            ):
                continue
            audience = conn.execute(
                select(func.count()).where(
                    subscribers.c.status == SubscriberStatus.CONFIRMED,
                    subscribers.c.newsletters == true(),
                    subscribers.c.confirmed_at <= letter.send_at,
                )
            ).scalar_one()
            items.append(
                Planned(letter.send_at, NEWSLETTERS, letter.slug, f"{audience} subscribers")
            )
    return sorted(items, key=lambda i: i.due_at)
