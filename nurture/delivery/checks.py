"""The last checks before a row leaves: what planning checked, asked again at send time.

Between planning and sending, a reader may unsubscribe, turn newsletters off or pause,
a newsletter may pass its "not after", a step may vanish from the files, and the
reader's send window may close (a dispatcher down overnight must not catch up at
3 a.m.). :func:`sort` says, for each row taken, whether it goes now, is cancelled (and
why) or waits until a given instant. Pure: no database, no clock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from nurture.campaigns import Catalogue
from nurture.delivery import sequencing
from nurture.exceptions import CampaignError
from nurture.store import outbox as outbox_ops
from nurture.store.statuses import MARKETING, OutboxKind, SubscriberStatus


@dataclass
class Verdicts:
    """Rows that go now, rows cancelled by reason, and rows deferred to an instant."""

    sendable: list[outbox_ops.Claimed] = field(default_factory=list)
    cancel: dict[str, list[outbox_ops.Claimed]] = field(default_factory=lambda: defaultdict(list))
    defer: dict[int, datetime] = field(default_factory=dict)


def sort(
    rows: Sequence[outbox_ops.Claimed],
    now: datetime,
    catalogue: Catalogue,
    default_window: sequencing.Window,
    practice_zone: ZoneInfo,
) -> Verdicts:
    """The verdict on every row taken, as of ``now``."""
    verdicts = Verdicts()
    sendable, cancel, defer = verdicts.sendable, verdicts.cancel, verdicts.defer
    # A batch holds few steps and few zones: what the files say of a step, and when a
    # zone's window opens, are worked out once per batch, not once per row.
    steps: dict[tuple[str, str, str], tuple[bool, sequencing.Window, sequencing.Days]] = {}
    # When a zone's window opens, and whether that is later than now: comparing two
    # aware datetimes of different zones asks both for their offset, once per row.
    opens: dict[tuple[str | None, sequencing.Window, sequencing.Days], tuple[datetime, bool]] = {}
    # The enum members as locals: on Python 3.11 reading one off its class is a
    # descriptor call, and these are read for every row of every batch.
    confirmed, newsletter = SubscriberStatus.CONFIRMED, OutboxKind.NEWSLETTER
    for row in rows:
        marketing = row.kind in MARKETING
        if row.email is None:
            cancel["no subscriber"].append(row)
            continue
        if row.expired:
            cancel["expired"].append(row)
            continue
        if marketing and row.status != confirmed:
            cancel["not subscribed"].append(row)
            continue
        if row.kind == newsletter and not row.newsletters:
            cancel["newsletters off"].append(row)
            continue
        key = (row.kind, row.campaign, row.step)
        step = steps.get(key)
        if step is None:
            known = _known(catalogue, row)
            window, days = (
                _window(catalogue, row, default_window) if known else (default_window, None)
            )
            step = steps[key] = (known, window, days)
        known, window, days = step
        if not known:
            cancel["no such step"].append(row)
        elif marketing:
            if row.paused_until is not None and row.paused_until > now:
                zone = sequencing.zone_for(row.timezone, practice_zone)
                at = sequencing.send_time(
                    now, zone=zone, window=window, paused_until=row.paused_until, days=days
                )
                later = at > now
            else:
                opening = (row.timezone, window, days)
                found = opens.get(opening)
                if found is None:
                    zone = sequencing.zone_for(row.timezone, practice_zone)
                    at = sequencing.into_window(now, zone, window, days)
                    found = opens[opening] = (at, at > now)
                at, later = found
            if later:
                defer[row.id] = at
            else:
                sendable.append(row)
        else:
            sendable.append(row)
    return verdicts


def _known(catalogue: Catalogue, row: outbox_ops.Claimed) -> bool:
    """Whether the campaign files still hold what the row would send (a draft is
    never sent: a step made a draft again after it was queued is cancelled)."""
    if row.kind == OutboxKind.CONFIRMATION:
        # A confirmation names the campaign signed up for, not one of its steps.
        return row.campaign in catalogue.campaigns
    if row.kind == OutboxKind.SEQUENCE:
        campaign = catalogue.campaigns.get(row.campaign)
        return campaign is not None and any(s.slug == row.step for s in campaign.steps)
    try:
        catalogue.content_for(row.campaign, row.step)
    except CampaignError:
        return False
    return True


def _window(
    catalogue: Catalogue, row: outbox_ops.Claimed, default: sequencing.Window
) -> tuple[sequencing.Window, sequencing.Days]:
    """The row's send window and send days: its campaign's and step's for a sequence."""
    campaign = catalogue.campaigns.get(row.campaign)
    if row.kind != OutboxKind.SEQUENCE or campaign is None:
        return default, None
    days = campaign.send_days
    for step in campaign.steps:
        if step.slug == row.step:
            days = campaign.days_for(step)
    return campaign.send_window or default, days
