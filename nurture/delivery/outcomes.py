"""What a sequence does when one of its emails was sent, refused, given up or lost.

One place for the bookkeeping that follows an outcome, whoever learnt it: dispatch
(the provider's answer), reconciliation (the folder, the timeout policy) or a provider
webhook (``processed``/``delivered`` for a send whose answer was lost).

- sent, or given up after the retry window: the enrolment moves on to its next step,
  due that step's ``delay`` later (a reader should not be stuck on a step that could
  not be delivered during a long outage);
- refused for good (a bad address): the enrolment stops;
- the step no longer exists (removed from the campaign): planning picks up from here.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection

from nurture.campaigns import Catalogue
from nurture.delivery import sequencing
from nurture.store import enrolments as enrolment_ops
from nurture.store.statuses import EnrolmentStatus, OutboxKind

log = logging.getLogger(__name__)


class SentRow(Protocol):
    """What outcome bookkeeping needs of an outbox row (``outbox_ops.Claimed`` has it)."""

    @property
    def subscriber_id(self) -> int | None: ...
    @property
    def kind(self) -> str: ...
    @property
    def campaign(self) -> str: ...
    @property
    def step(self) -> str: ...


def _by_step(rows: Iterable[SentRow]) -> dict[tuple[str, str], list[int]]:
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    sequence = OutboxKind.SEQUENCE  # read off the enum once, not per row (a descriptor)
    for row in rows:
        if row.kind == sequence and row.subscriber_id is not None:
            groups[(row.campaign, row.step)].append(row.subscriber_id)
    return groups


def moved_on(conn: Connection, catalogue: Catalogue, rows: Iterable[SentRow], at: datetime) -> None:
    """Sequence steps that were sent (or given up): each enrolment moves to its next step."""
    for (slug, step), subscriber_ids in _by_step(rows).items():
        campaign = catalogue.campaigns.get(slug)
        if campaign is None:
            continue  # the campaign is gone: planning stops these enrolments
        steps = [s.slug for s in campaign.steps]
        if step not in steps:
            # Removed since it was planned: continue from the enrolment's position.
            log.warning("sent step no longer in its campaign", extra={"campaign": slug})
            enrolment_ops.replan(conn, campaign=slug, subscriber_ids=subscriber_ids, now=at)
            continue
        index = steps.index(step)
        enrolment_ops.advance(
            conn,
            campaign=slug,
            step_index=index,
            subscriber_ids=subscriber_ids,
            sent_at=at,
            next_due=sequencing.next_step_due(at, [s.delay for s in campaign.steps], index + 1),
            finished=EnrolmentStatus.HELD if campaign.hold else EnrolmentStatus.COMPLETED,
            step=step,
        )


def refused(conn: Connection, rows: Iterable[SentRow], now: datetime) -> None:
    """Steps the provider refused for good: those enrolments stop."""
    for (slug, _step), subscriber_ids in _by_step(rows).items():
        enrolment_ops.stop_for(conn, campaign=slug, subscriber_ids=subscriber_ids, now=now)


def vanished(conn: Connection, rows: Iterable[SentRow], now: datetime) -> None:
    """Planned steps that were cancelled because the step no longer exists."""
    for (slug, _step), subscriber_ids in _by_step(rows).items():
        enrolment_ops.replan(conn, campaign=slug, subscriber_ids=subscriber_ids, now=now)
