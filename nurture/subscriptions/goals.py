"""Goal exit: a reader who reached the practice's goal (booked a consultation) leaves
the sequences that say ``stop_when: [booked]``, and stays subscribed to newsletters.

Called by ``nurture subscribers booked ADDRESS`` and by ``POST /api/events/booked`` (a
booking tool's webhook). Idempotent: a second report finds nothing left to stop. The
queued step of a stopped sequence is cancelled in the same transaction, and the goal is
counted per campaign and per number of steps received, never per person.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Engine

from nurture.campaigns import Catalogue
from nurture.store import enrolments as enrolment_ops
from nurture.store import goals as goal_ops
from nurture.store import subscriber_outbox as mail_ops
from nurture.store import subscribers as subscriber_ops
from nurture.store.statuses import EnrolmentStatus, OutboxKind
from nurture.subscriptions.validation import lookup_address

log = logging.getLogger(__name__)
BOOKED = "booked"


def reached(engine: Engine, catalogue: Catalogue, email: str, goal: str, *, now: datetime) -> int:
    """Stops the reader's sequences that list ``goal`` in ``stop_when``; returns how many
    stopped (0 for an unknown address, or when nothing is left to stop)."""
    with engine.begin() as conn:
        row = subscriber_ops.by_email(conn, lookup_address(email), for_update=True)
        if row is None:
            return 0
        stopped = 0
        for enrolment in enrolment_ops.enrolments_of(conn, row.id):
            campaign = catalogue.campaigns.get(enrolment.campaign)
            current = enrolment.status in (EnrolmentStatus.ACTIVE, EnrolmentStatus.HELD)
            if campaign is None or goal not in campaign.stop_when or not current:
                continue
            enrolment_ops.stop_enrolments(conn, row.id, now=now, campaign=campaign.slug)
            mail_ops.cancel_mail(
                conn,
                row.id,
                now=now,
                reason=f"goal reached: {goal}",
                kinds=(OutboxKind.SEQUENCE,),
                campaign=campaign.slug,
            )
            # Steps received so far: the one pointed at was not (it was just cancelled).
            goal_ops.count_goal(
                conn,
                campaign=campaign.slug,
                goal=goal,
                after_step=min(enrolment.next_step, len(campaign.steps)),
                day=now.date(),
            )
            stopped += 1
    if stopped:
        log.info("goal reached", extra={"action": goal, "stopped": stopped})
    return stopped
