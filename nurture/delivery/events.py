"""Applying provider delivery events: record, reconcile, suppress.

Events arrive in batches, more than once, and out of order. Each is recorded in
``webhook_events`` under the provider's event id first; a replay finds it there and
changes nothing. Then:

- ``processed`` / ``delivered``: the outbox row is marked sent if it was still
  ``sending`` or ``unknown`` (this is how a send whose outcome was lost in a crash is
  reconciled without being sent again), and its sequence moves on;
- hard ``bounce``, ``dropped``, ``spamreport``, ``unsubscribe``, ``group_unsubscribe``:
  the address is suppressed, the subscriber unsubscribed and their queued mail
  cancelled, in the same transaction;
- ``deferred``, soft bounces, opens and clicks: recorded only.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from nurture import metrics
from nurture.campaigns import Catalogue
from nurture.delivery.reconciliation import reconcile_sent
from nurture.mail.addresses import normalise_email
from nurture.settings import Settings
from nurture.store import subscriber_outbox as mail_ops
from nurture.store import subscribers as subscriber_ops
from nurture.store import suppressions as suppression_ops
from nurture.store import webhook_events as event_ops
from nurture.subscriptions import Subscriptions
from nurture.webhooks.base import DeliveryEvent

log = logging.getLogger(__name__)
#: Events that are evidence a send left: they settle a row still in flight.
_EVIDENCE = frozenset({"processed", "delivered"})
_REASON = {
    "bounce": "bounce",
    "dropped": "dropped",
    "spamreport": "spamreport",
    "unsubscribe": "unsubscribe",
    "group_unsubscribe": "unsubscribe",
}


class DeliveryEvents:
    """Applies normalised events (see :mod:`nurture.webhooks`) to the database."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        catalogue: Catalogue,
        subscriptions: Subscriptions,
        provider: str = "sendgrid",
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.catalogue = catalogue
        self.subscriptions = subscriptions
        self.provider = provider

    def apply(self, events: Sequence[DeliveryEvent], *, now: datetime) -> int:
        """Applies every event not seen before; returns how many.

        Set-based first: the whole batch in one transaction, recorded by one INSERT,
        and only the events that change something (evidence for a row not settled yet,
        a suppression) applied one by one. Should anything in it fail, that transaction
        is rolled back and the batch applied again event by event, each in its own
        savepoint, so one bad event costs only itself.
        """
        if not events:
            return 0
        try:
            with self.engine.begin() as conn:
                applied, counts = self._apply_batch(conn, events, now)
        except Exception:
            log.warning(
                "webhook batch not applied as a whole; applying its events one by one",
                exc_info=True,
                extra={"action": "webhook.batch_fallback"},
            )
            return self._apply_each(events, now)
        for (kind, new), count in counts.items():
            metrics.webhook_events.labels(kind, "yes" if new else "duplicate").inc(count)
        return applied

    def _apply_batch(
        self, conn: Connection, events: Sequence[DeliveryEvent], now: datetime
    ) -> tuple[int, Counter[tuple[str, bool]]]:
        """The set-based path: (events applied, counts by (kind, new)) for the metrics."""
        rows: dict[str, dict[str, Any]] = {}  # by stored id: a repeated event goes in once
        for event in events:
            row = self._row(event, now)
            rows.setdefault(row["event_id"], row)
        inserted = event_ops.remember_many(conn, list(rows.values()))
        fresh: list[DeliveryEvent] = []
        counts: Counter[tuple[str, bool]] = Counter()
        for event in events:
            key = event.event_id[:100]
            new = key in inserted
            inserted.discard(key)  # a second copy in the same batch is a duplicate
            counts[(event.kind, new)] += 1
            if new:
                fresh.append(event)
        evidence = [e.outbox_id for e in fresh if e.kind in _EVIDENCE and e.outbox_id is not None]
        # Rows already settled (the dispatcher recorded them: nearly every row) need
        # nothing more; the rest go through the same steps as one event alone, in order.
        pending = event_ops.unsettled(conn, evidence)
        for event in fresh:
            if event.kind in _EVIDENCE and event.outbox_id in pending:
                assert event.outbox_id is not None
                reconcile_sent(conn, self.catalogue, event.outbox_id, _message_id(event.raw), now)
            elif event.suppresses:
                self._suppress(conn, event, now)
        return len(fresh), counts

    def _apply_each(self, events: Sequence[DeliveryEvent], now: datetime) -> int:
        """The batch again, one savepoint per event, in one transaction."""
        applied = 0
        with self.engine.begin() as conn:
            for event in events:
                # One savepoint per event: an event that cannot be applied (a bug, a row
                # in a state nobody foresaw) must not take the batch's bounces and
                # unsubscribes down with it; SendGrid would retry the batch for a day
                # and then drop it.
                try:
                    with conn.begin_nested():
                        new = self._apply_one(conn, event, now)
                except Exception:
                    log.exception("webhook event not applied", extra={"event": event.kind})
                    metrics.webhook_events.labels(event.kind, "error").inc()
                    continue
                metrics.webhook_events.labels(event.kind, "yes" if new else "duplicate").inc()
                applied += int(new)
        return applied

    def _apply_one(self, conn: Connection, event: DeliveryEvent, now: datetime) -> bool:
        if not self._remember(conn, event, now):
            return False
        if event.kind in _EVIDENCE and event.outbox_id is not None:
            reconcile_sent(conn, self.catalogue, event.outbox_id, _message_id(event.raw), now)
        elif event.suppresses:
            self._suppress(conn, event, now)
        return True

    def _remember(self, conn: Connection, event: DeliveryEvent, now: datetime) -> bool:
        return event_ops.remember(conn, **self._fields(event, now))

    def _row(self, event: DeliveryEvent, now: datetime) -> dict[str, Any]:
        return event_ops.event_row(**self._fields(event, now))

    def _fields(self, event: DeliveryEvent, now: datetime) -> dict[str, Any]:
        return {
            "event_id": event.event_id,
            "provider": self.provider,
            "event": event.kind,
            "outbox_id": event.outbox_id,
            "occurred_at": event.occurred_at,
            "received_at": now,
            "detail": event.reason,
        }

    def _suppress(self, conn: Connection, event: DeliveryEvent, now: datetime) -> None:
        row = self._subscriber(conn, event)
        email = row.email if row is not None else event.email
        suppression_ops.add(conn, self.settings, email, reason=_REASON[event.kind], now=now)
        if row is not None:
            self.subscriptions.withdraw(conn, row, channel="webhook", now=now)
        log.info("address suppressed by provider event", extra={"event": event.kind})

    def _subscriber(self, conn: Connection, event: DeliveryEvent) -> Any:
        """The subscriber the event is about: by the outbox row first, else the address."""
        if event.outbox_id is not None:
            subscriber_id = mail_ops.subscriber_of(conn, event.outbox_id)
            if subscriber_id is not None:
                return subscriber_ops.by_id(conn, subscriber_id, for_update=True)
        return subscriber_ops.by_email(conn, normalise_email(event.email), for_update=True)


def _message_id(raw: dict[str, Any]) -> str | None:
    """SendGrid's ``sg_message_id`` is ``<X-Message-Id>.<suffix>``; keep the request's id."""
    value = raw.get("sg_message_id")
    return str(value).split(".", 1)[0] if value else None
