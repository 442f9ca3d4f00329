"""The preference centre: stop one sequence, stop newsletters, pause, resume, stop all.

Each function changes one subscriber inside the caller's transaction; the service
(:meth:`Subscriptions.change_preferences`) reads the token, locks the row, calls one of
them and writes the consent record. Pausing moves queued mail and due steps to the end
of the pause (inside the send window of the subscriber's zone), so the planner and the
dispatcher need no knowledge of pauses to get it right; resuming brings them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, Row

from nurture.campaigns import Catalogue
from nurture.delivery import sequencing
from nurture.exceptions import SubscriptionError
from nurture.settings import Settings
from nurture.store import enrolments as enrolment_ops
from nurture.store import subscriber_outbox as mail_ops
from nurture.store import subscribers as subscriber_ops
from nurture.store.statuses import MARKETING, EnrolmentStatus, OutboxKind

STOP_SEQUENCE, STOP_NEWSLETTERS, RESUME_NEWSLETTERS = (
    "stop_sequence",
    "stop_newsletters",
    "resume_newsletters",
)
STOP_ALL, PAUSE, RESUME, RESUBSCRIBE = "stop_all", "pause", "resume", "resubscribe"
ACTIONS = (
    STOP_SEQUENCE,
    STOP_NEWSLETTERS,
    RESUME_NEWSLETTERS,
    STOP_ALL,
    PAUSE,
    RESUME,
    RESUBSCRIBE,
)
PAUSE_LENGTH = timedelta(days=30)

#: Sequences a reader is still in: running, or held at the end of an evergreen one.
CURRENT = (EnrolmentStatus.ACTIVE, EnrolmentStatus.HELD)


@dataclass(frozen=True)
class SequenceChoice:
    """An active sequence the person may stop: its slug and its discreet name."""

    slug: str
    name: str


@dataclass(frozen=True)
class Preferences:
    """What the preference centre shows (never the address)."""

    first_name: str | None
    status: str
    newsletters: bool
    paused_until: datetime | None
    sequences: tuple[SequenceChoice, ...]

    def paused(self, now: datetime) -> bool:
        return self.paused_until is not None and self.paused_until > now


@dataclass(frozen=True)
class PreferenceChange:
    """The outcome of one change: the new state, the action, and a confirmation to send."""

    preferences: Preferences
    action: str
    changed: bool
    outbox_id: int | None = None


def view(conn: Connection, catalogue: Catalogue, row: Row[Any]) -> Preferences:
    """The person's current choices, read inside the caller's connection."""
    sequences = tuple(
        SequenceChoice(e.campaign, _name(catalogue, e.campaign))
        for e in enrolment_ops.enrolments_of(conn, row.id)
        if e.status in CURRENT
    )
    return Preferences(
        row.first_name, row.status, bool(row.newsletters), row.paused_until, sequences
    )


def _name(catalogue: Catalogue, slug: str) -> str:
    campaign = catalogue.campaigns.get(slug)
    return campaign.name if campaign is not None else slug


def stop_sequence(conn: Connection, row: Row[Any], campaign: str | None, *, now: datetime) -> bool:
    """Stops one active sequence and cancels its queued step."""
    active = {e.campaign for e in enrolment_ops.enrolments_of(conn, row.id) if e.status in CURRENT}
    if not campaign or campaign not in active:
        raise SubscriptionError("Please choose one of your current series.", field="campaign")
    enrolment_ops.stop_enrolments(conn, row.id, now=now, campaign=campaign)
    mail_ops.cancel_mail(
        conn,
        row.id,
        now=now,
        reason="stopped by preferences",
        kinds=(OutboxKind.SEQUENCE,),
        campaign=campaign,
    )
    return True


def set_newsletters(conn: Connection, row: Row[Any], wanted: bool, *, now: datetime) -> bool:
    """Turns newsletters off (cancelling queued ones) or back on."""
    if bool(row.newsletters) == wanted:
        return False
    subscriber_ops.change(conn, row.id, newsletters=wanted)
    if not wanted:
        mail_ops.cancel_mail(
            conn, row.id, now=now, reason="stopped by preferences", kinds=(OutboxKind.NEWSLETTER,)
        )
    return True


class Timing:
    """Send times for one subscriber: their zone, and each campaign's window."""

    def __init__(self, settings: Settings, catalogue: Catalogue, row: Row[Any]) -> None:
        self.zone = sequencing.zone_for(row.timezone, settings.zone)
        self.settings = settings
        self.catalogue = catalogue

    def window(self, campaign: str) -> tuple[time, time]:
        found = self.catalogue.campaigns.get(campaign)
        return (found.send_window if found is not None else None) or self.settings.window

    def at_or_after(self, moment: datetime, campaign: str) -> datetime:
        return sequencing.into_window(moment, self.zone, self.window(campaign))


def pause(conn: Connection, row: Row[Any], timing: Timing, *, now: datetime) -> bool:
    """Pauses all marketing mail for 30 days: queued rows and due steps move past the pause."""
    until = now + PAUSE_LENGTH
    subscriber_ops.change(conn, row.id, paused_until=until)
    for mail in mail_ops.waiting_mail(conn, row.id, kinds=MARKETING):
        if mail.due_at < until:
            mail_ops.move_mail(
                conn, mail.id, due_at=timing.at_or_after(until, mail.campaign), now=now
            )
    for e in enrolment_ops.enrolments_of(conn, row.id):
        if (
            e.status == EnrolmentStatus.ACTIVE
            and e.next_due_at is not None
            and e.next_due_at < until
        ):
            enrolment_ops.set_enrolment(conn, e.id, next_due_at=until, updated_at=now)
    return True


def resume(conn: Connection, row: Row[Any], timing: Timing, *, now: datetime) -> bool:
    """Ends a pause early: what the pause moved becomes due again now (inside the window)."""
    until = row.paused_until
    if until is None or until <= now:
        if until is not None:
            subscriber_ops.change(conn, row.id, paused_until=None)
        return False
    subscriber_ops.change(conn, row.id, paused_until=None)
    # Rows due after the pause's end can only be there because of it: planning queues a
    # row when its step is due, so an unpaused row is never due weeks ahead.
    for mail in mail_ops.waiting_mail(conn, row.id, kinds=MARKETING):
        if mail.due_at >= until:
            mail_ops.move_mail(
                conn, mail.id, due_at=timing.at_or_after(now, mail.campaign), now=now
            )
    for e in enrolment_ops.enrolments_of(conn, row.id):
        if e.status == EnrolmentStatus.ACTIVE and e.next_due_at == until:
            enrolment_ops.set_enrolment(conn, e.id, next_due_at=now, updated_at=now)
    return True
