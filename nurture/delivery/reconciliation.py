"""Housekeeping for sends whose outcome is not known: expired leases, unknown rows.

The policy for a row whose request may have left before its answer was lost (a
timeout, a dropped connection, a process that died mid-send), status ``unknown``:

1. ask the provider first: the folder can tell (its file is there, or not);
2. with SendGrid and its Event Webhook configured, wait: ``processed``/``delivered``
   events carry our outbox id (``custom_args``) and mark the row sent
   (:mod:`nurture.delivery.events`). When UNKNOWN_RECONCILE_MINUTES pass without any
   event, the request is taken never to have reached SendGrid, and the row is queued
   again;
3. a provider with no evidence at all (SMTP, console, SendGrid without a webhook key)
   never resends blindly: the row fails with "outcome unknown", and its sequence
   moves on as if it had been sent (it most probably was).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

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
    after = 0
    while True:
        with engine.begin() as conn:
            rows = outbox_ops.unknown_rows(conn, before=now, after_id=after, limit=PAGE)
            for row in rows:
                verdict = provider.reconcile(row.id)
                if verdict is True:
                    report.sent += outcomes.reconcile_sent(conn, catalogue, row.id, None, now)
                elif verdict is False:
                    report.requeued += outbox_ops.requeue(
                        conn, {row.id: now}, now=now, expect=OutboxStatus.UNKNOWN,
                        error="never left: resend",
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
