"""Planning: turn due sequence steps and open newsletters into outbox rows.

Planning only ever *inserts* outbox rows, guarded by the unique constraint on
(subscriber, campaign, step), so running it twice, late, or from two processes at once
never plans a message twice. Each due time is moved into the subscriber's send window
in their own time zone here; dispatch checks the window again before sending.
"""

from __future__ import annotations

import logging
import weakref
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine

from nurture.campaigns import NEWSLETTERS, Catalogue, Newsletter
from nurture.delivery import collection, outcomes, sequencing
from nurture.logs import mask_email
from nurture.settings import Settings
from nurture.store import database, steps
from nurture.store import enrolments as enrolment_ops
from nurture.store import outbox as outbox_ops
from nurture.store import planning as planning_ops
from nurture.store import subscribers as subscriber_ops
from nurture.store.statuses import EnrolmentStatus, OutboxKind, OutboxStatus

log = logging.getLogger(__name__)


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


STOP, COMPLETE, HOLD = "stop", "complete", "hold"


def decide(
    enrolment: Any, catalogue: Catalogue, zone: ZoneInfo, window: sequencing.Window
) -> dict[str, Any] | str:
    """What to do with one due enrolment: an outbox row to insert, ``STOP`` or ``COMPLETE``.

    ``zone`` and ``window`` are the practice's (``settings.zone`` and ``.window``), read
    once per pass by the caller: each read parses the setting again, and this runs for
    every enrolment due.
    """
    campaign = catalogue.campaigns.get(enrolment.campaign)
    if campaign is None:
        # The therapist removed the campaign folder: the sequence ends here.
        log.warning("enrolment in unknown campaign", extra={"campaign": enrolment.campaign})
        return STOP
    position = campaign.position_after(enrolment.last_step, enrolment.next_step)
    if position >= len(campaign.steps):
        # Evergreen: the reader stays, for the steps the therapist adds later. A reader
        # who signed up before any step was published waits for the first one too.
        return HOLD if campaign.hold or not campaign.steps else COMPLETE
    step = campaign.steps[position]
    due_at = sequencing.send_time(
        enrolment.next_due_at,
        zone=sequencing.zone_for(enrolment.timezone, zone),
        window=campaign.send_window or window,
        paused_until=enrolment.paused_until,
        days=campaign.days_for(step),
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
    _wake_held(engine, catalogue, now=now)
    zone, window = settings.zone, settings.window
    # A thousand enrolments make some ten thousand short-lived objects; at Python's
    # default threshold the collector took a tenth of the time of 12 rounds, most of it
    # in the older generations' rounds those objects set off (one walked every object).
    with collection.fewer_collections():
        while True:
            if _plan_batch(engine, catalogue, report, zone, window, now=now, batch=batch):
                return report


def _plan_batch(
    engine: Engine,
    catalogue: Catalogue,
    report: PlanReport,
    zone: ZoneInfo,
    window: sequencing.Window,
    *,
    now: datetime,
    batch: int,
) -> bool:
    """Plans up to ``batch`` due enrolments in one transaction; True when none are left
    (as far as this transaction sees: another planner's rows still taken look due)."""
    with engine.begin() as conn:
        due = enrolment_ops.take_for_planning(conn, now=now, limit=batch)
        if not due:
            return True
        rows, completed, stopped, held = [], [], [], []
        for e in due:
            decision = decide(e, catalogue, zone, window)
            if decision == STOP:
                stopped.append(e.id)
            elif decision == COMPLETE:
                completed.append(e.id)
            elif decision == HOLD:
                held.append(e.id)
            else:
                assert isinstance(decision, dict)
                rows.append(decision)
        inserted = outbox_ops.enqueue_keys(conn, rows, now=now)
        report.sequence_rows += len(inserted)
        _settle_conflicts(conn, catalogue, rows, inserted, now=now)
        enrolment_ops.set_status(conn, completed, EnrolmentStatus.COMPLETED, now=now)
        enrolment_ops.set_status(conn, stopped, EnrolmentStatus.STOPPED, now=now)
        enrolment_ops.set_status(conn, held, EnrolmentStatus.HELD, now=now)
        report.completed += len(completed)
        # A full batch may have been the last: a probe in this transaction (where its
        # own rows are no longer due) costs less than opening another to find nothing,
        # which took 3-4 ms of planning 1,000 due on PostgreSQL.
        return len(due) < batch or not enrolment_ops.any_due(conn, now=now)


#: Per process and engine, how many steps each evergreen campaign had when its held
#: readers were last looked at: the question is only asked again when that changes.
_held_checked: weakref.WeakKeyDictionary[Engine, dict[str, tuple[int, bool]]] = (
    weakref.WeakKeyDictionary()
)


def _wake_held(engine: Engine, catalogue: Catalogue, *, now: datetime) -> None:
    """Steps added to an evergreen sequence reach the readers held at its end, each
    after its own delay from now; a sequence no longer evergreen releases them, except
    readers who joined before its first step was published: that step reaches them."""
    checked = _held_checked.setdefault(engine, {})
    for campaign in catalogue.campaigns.values():
        state = (len(campaign.steps), campaign.hold)
        if checked.get(campaign.slug) == state:
            continue
        with engine.begin() as conn:
            if not campaign.hold:
                enrolment_ops.release_held(conn, campaign.slug, now=now, after_first=True)
            for place in enrolment_ops.held_places(conn, campaign.slug):
                position = campaign.position_after(*place)
                if position < len(campaign.steps):
                    due = now + campaign.steps[position].delay
                    enrolment_ops.wake(
                        conn, campaign.slug, place=place, position=position, due=due, now=now
                    )
        checked[campaign.slug] = state


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
    slug, send_at = newsletter.slug, newsletter.send_at
    with engine.begin() as conn:
        planning_ops.start_run(conn, slug, now=now)
    planned = 0
    while True:
        with engine.begin() as conn:
            run = planning_ops.lock_run(conn, slug)
            if run.done:
                break
            last = planning_ops.chunk_end(conn, send_at=send_at, after=run.cursor, size=CHUNK)
            if last is None:
                planning_ops.finish_run(conn, slug)
                break
            added = _plan_chunk(conn, newsletter, settings, run.cursor, last, now=now)
            planned += added
            planning_ops.advance_run(conn, slug, cursor=last, added=added)
        if planned == added:  # after the first chunk: dispatch starts on fresh statistics
            planning_ops.analyze_outbox(engine)
    if planned:
        with engine.begin() as conn:
            _respect_pauses(conn, newsletter, settings, now=now)
    if planned:
        planning_ops.analyze_outbox(engine)
    log.info("newsletter planned", extra={"newsletter": newsletter.slug, "rows": planned})
    return planned


def _plan_chunk(
    conn: Connection,
    newsletter: Newsletter,
    settings: Settings,
    first: int,
    last: int,
    *,
    now: datetime,
) -> int:
    """Inserts the audience with ids in (first, last], one INSERT ... SELECT per due time."""
    send_at = newsletter.send_at
    step_id = steps.id_of(conn, NEWSLETTERS, newsletter.slug)  # once for the whole chunk
    zones = planning_ops.chunk_timezones(conn, send_at=send_at, first=first, last=last)
    by_due: dict[datetime, list[str | None]] = defaultdict(list)
    for name in zones:
        zone = sequencing.zone_for(name, settings.zone)
        by_due[sequencing.into_window(send_at, zone, settings.window)].append(name)
    for due_at, names in by_due.items():
        if newsletter.not_after is not None and due_at >= newsletter.not_after:
            continue  # their window opens only after the newsletter expires
        planning_ops.insert_newsletter_rows(
            conn,
            campaign=NEWSLETTERS,
            slug=newsletter.slug,
            step_id=step_id,
            send_at=send_at,
            not_after=newsletter.not_after,
            first=first,
            last=last,
            zones=names,
            due_at=due_at,
            now=now,
        )
    return planning_ops.count_newsletter_rows(conn, step_id=step_id, first=first, last=last)


def _respect_pauses(
    conn: Connection, newsletter: Newsletter, settings: Settings, *, now: datetime
) -> None:
    """Moves this newsletter's rows for paused subscribers to the end of their pause.

    Starts from the (few) paused subscribers and reaches their row through the unique
    index, rather than joining a million fresh outbox rows.
    """
    step_id = steps.id_of(conn, NEWSLETTERS, newsletter.slug)
    zone, window = settings.zone, settings.window  # each read parses the setting again
    for person in planning_ops.paused_subscribers(conn, now=now):
        due = sequencing.send_time(
            person.paused_until, zone=sequencing.zone_for(person.timezone, zone), window=window
        )
        planning_ops.defer_newsletter_row(conn, person.id, step_id=step_id, due_at=due, now=now)


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
        for row in planning_ops.due_preview(conn, now=now, limit=limit):
            who = mask_email(row.email) if row.email else "(erased)"
            items.append(Planned(row.due_at, row.campaign, row.step, who))
        due = enrolment_ops.due_for_planning(conn, now=now, limit=limit)
        ids = [e.subscriber_id for e in due]
        emails = subscriber_ops.emails_of(conn, ids)
        zone, window = settings.zone, settings.window
        for e in due:
            decision = decide(e, catalogue, zone, window)
            if isinstance(decision, dict) and decision["due_at"] <= now:
                who = mask_email(emails.get(e.subscriber_id, ""))
                items.append(Planned(decision["due_at"], e.campaign, decision["step"], who))
        done = planning_ops.planned_slugs(conn)
        for letter in catalogue.newsletters.values():
            if letter.slug in done or not sequencing.newsletter_open(
                now, letter.send_at, letter.not_after
            ):
                continue
            audience = planning_ops.audience_size(conn, send_at=letter.send_at)
            items.append(
                Planned(letter.send_at, NEWSLETTERS, letter.slug, f"{audience} subscribers")
            )
    return sorted(items, key=lambda i: i.due_at)
