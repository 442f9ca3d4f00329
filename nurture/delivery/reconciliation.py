"""Housekeeping for sends whose outcome is not known: expired leases, unknown rows.

The policy for a row whose request may have left before its answer was lost (a
timeout, a dropped connection, a process that died mid-send), status ``unknown``:

1. ask the provider first: the folder can tell (its file is there, or not);
2. with SendGrid and its Event Webhook configured, wait: ``processed``/``delivered``
   events carry our outbox id (``custom_args``) and mark the row sent
   (:mod:`nurture.delivery.events`). Events for *later* requests are evidence too:
   once a request sent after this row went unknown has had its events arrive, and
   UNKNOWN_EVENT_GRACE_MINUTES more pass with none for this row, its request is taken
   never to have reached SendGrid and the row is queued again, minutes after the
   outage, not a day. With no webhook traffic flowing, the long wait stands: after
   UNKNOWN_RECONCILE_MINUTES without any event the row is queued again;
3. a provider with no evidence at all (SMTP, console, SendGrid without a webhook key)
   never resends blindly: the row fails with "outcome unknown", and its sequence
   moves on as if it had been sent (it most probably was).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine

from nurture import metrics
from nurture.campaigns import Catalogue
from nurture.delivery import outcomes
from nurture.providers.base import Provider
from nurture.settings import Settings
from nurture.store import outbox as outbox_ops
from nurture.store.statuses import OutboxStatus

log = logging.getLogger(__name__)
PAGE = 500


@dataclass
class ReconcileReport:
    leases_expired: int = 0
    sent: int = 0
    requeued: int = 0
    failed: int = 0


def reconcile(
    engine: Engine, settings: Settings, catalogue: Catalogue, provider: Provider, *, now: datetime
) -> ReconcileReport:
    """One housekeeping pass over every row in flight, as of ``now``."""
    report = ReconcileReport()
    window = timedelta(minutes=settings.unknown_reconcile_minutes)
    has_events = settings.delivery == "sendgrid" and bool(settings.sendgrid_webhook_public_key)
    with engine.begin() as conn:
        report.leases_expired = outbox_ops.expire_leases(conn, now=now)
    reported_up_to = None  # requests sent up to then have had their events
    if has_events:
        with engine.begin() as conn:
            reported_up_to = outbox_ops.latest_request_with_events(
                conn,
                received_by=now - timedelta(minutes=settings.unknown_event_grace_minutes),
                since=now - window,
            )
    after = 0
    while True:
        with engine.begin() as conn:
            rows = outbox_ops.unknown_rows(conn, before=now, after_id=after, limit=PAGE)
            for row in rows:
                verdict = provider.reconcile(row.id)
                if verdict is True:
                    report.sent += reconcile_sent(conn, catalogue, row.id, None, now)
                elif verdict is False:
                    report.requeued += outbox_ops.requeue(
                        conn, {row.id: now}, now=now, expect=OutboxStatus.UNKNOWN,
                        error="never left: resend",
                    )  # fmt: skip
                elif reported_up_to is not None and row.updated_at < reported_up_to:
                    report.requeued += outbox_ops.requeue(
                        conn, {row.id: now}, now=now, expect=OutboxStatus.UNKNOWN,
                        error="later requests reported, this one not: resend",
                    )  # fmt: skip
                elif now - row.updated_at < window:
                    continue  # still waiting for the provider's events
                elif has_events:
                    report.requeued += outbox_ops.requeue(
                        conn, {row.id: now}, now=now, expect=OutboxStatus.UNKNOWN,
                        error="no provider event: resend",
                    )  # fmt: skip
                elif outbox_ops.mark_failed(
                    conn,
                    {row.id: "outcome unknown; not resent"},
                    now=now,
                    expect=(OutboxStatus.UNKNOWN,),
                ):
                    report.failed += 1
                    outcomes.moved_on(conn, catalogue, [row], now)
        if len(rows) < PAGE:
            break
        after = rows[-1].id
    if report.failed or report.requeued:
        log.warning(
            "unknown outcomes settled",
            extra={"requeued": report.requeued, "failed": report.failed},
        )
    return report


def reconcile_sent(
    conn: Connection,
    catalogue: Catalogue,
    outbox_id: int,
    message_id: str | None,
    sent_at: datetime,
) -> int:
    """Evidence that a row left (a provider event, the folder): mark it sent, move on.

    Only a row still ``sending`` or ``unknown`` changes, and only then does its
    sequence move on: a second report of the same send (a replayed webhook, an event
    after the dispatcher recorded it) changes nothing.
    """
    row = outbox_ops.in_flight(conn, outbox_id)
    if row is None:
        return 0
    if outbox_ops.mark_sent(conn, {outbox_id: message_id}, now=sent_at) != 1:
        return 0
    outcomes.moved_on(conn, catalogue, [row], sent_at)
    metrics.sends.labels(OutboxStatus.SENT, "reconciled").inc()
    return 1
