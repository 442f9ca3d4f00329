"""A person's data: show it, erase it, and erase it when it is kept no longer.

* :func:`show` gathers everything held about one address as JSON-ready data.
* :func:`erase` deletes the person and keeps only a keyed hash of the address on the
  suppression list, so neither an import nor a bare sign-up can bring it back: only a
  fresh double opt-in lifts it.
* :func:`apply_retention` does the same, in housekeeping, to everyone unsubscribed
  (by link, bounce or complaint) longer than ``RETENTION_UNSUBSCRIBED_DAYS`` ago, and
  drops provider webhook events past their use.
* ``import_csv`` lives in :mod:`nurture.subscriptions.importing` and ``export_csv`` in
  :mod:`nurture.subscriptions.export` (both re-exported here).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row

from nurture.settings import Settings
from nurture.store import consents as consent_ops
from nurture.store import enrolments as enrolment_ops
from nurture.store import link_tokens
from nurture.store import retention as retention_ops
from nurture.store import subscriber_outbox as mail_ops
from nurture.store import subscribers as subscriber_ops
from nurture.store import suppressions as suppression_ops
from nurture.subscriptions.importing import EXPORT_COLUMNS as EXPORT_COLUMNS
from nurture.subscriptions.importing import ImportReport as ImportReport
from nurture.subscriptions.importing import import_csv as import_csv
from nurture.subscriptions.validation import lookup_address

log = logging.getLogger(__name__)

#: Provider webhook events are kept this long: far past any reconciliation window.
WEBHOOK_EVENT_DAYS = 30
#: People erased per transaction by retention (short transactions beside the service).
RETENTION_BATCH = 200


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


def show(engine: Engine, settings: Settings, email: str) -> dict[str, Any] | None:
    """Everything held about ``email`` (JSON-serialisable), or ``None`` when nothing is.

    Keys: ``subscriber``, ``consents``, ``enrolments``, ``outbox`` (history, no bodies:
    none are stored) and ``suppression``. An erased address shows only its suppression.
    """
    address = lookup_address(email)
    with engine.connect() as conn:
        row = subscriber_ops.by_email(conn, address)
        suppression = suppression_ops.lookup(conn, settings, address)
        if row is None and suppression is None:
            return None
        data: dict[str, Any] = {
            "subscriber": None,
            "consents": [],
            "enrolments": [],
            "outbox": [],
            "suppression": None,
        }
        if row is not None:
            # Links signed ahead of time are working unsubscribe links, not data about
            # the person: an export handed on must not carry them.
            person = {k: v for k, v in row._mapping.items() if k not in link_tokens.COLUMNS}
            data["subscriber"] = _jsonable(person)
            data["consents"] = [_jsonable(c) for c in consent_ops.of_subscriber(conn, row.id)]
            data["enrolments"] = [
                _jsonable(dict(e._mapping)) for e in enrolment_ops.enrolments_of(conn, row.id)
            ]
            data["outbox"] = [_jsonable(m) for m in mail_ops.mail_history(conn, row.id)]
        if suppression is not None:
            data["suppression"] = {
                "reason": suppression.reason,
                "since": suppression.created_at.isoformat(),
            }
    return data


def erase(
    engine: Engine, settings: Settings, email: str, now: datetime, *, channel: str = "cli"
) -> bool:
    """Deletes the person's data; ``True`` when there was a subscriber to delete.

    In one transaction: the error texts of their mail and its delivery events cleared
    (a bounce may quote the address), queued mail cancelled, their consent records
    stripped of IP, user agent and form URL (the records stay, anonymous, as evidence),
    an ``erase`` record added, the subscriber row deleted (enrolments with it), and the
    address suppressed (reason ``erased``). The suppression is made even for an unknown
    address: whoever asks for erasure does not want mail.
    """
    address = lookup_address(email)
    with engine.begin() as conn:
        row = subscriber_ops.by_email(conn, address, for_update=True)
        if row is not None:
            erase_row(conn, settings, row, now=now, channel=channel)
        suppression_ops.add(conn, settings, address, reason="erased", now=now, replace_reason=True)
    return row is not None


def erase_row(
    conn: Connection, settings: Settings, row: Row[Any], *, now: datetime, channel: str
) -> None:
    """The erasure of one subscriber row, inside the caller's transaction.

    :func:`erase` and :func:`apply_retention` share it. The address stays suppressed:
    an unsubscribed person keeps the reason they left for (unsubscribe, bounce, spam
    report); anyone else is suppressed as ``erased``.
    """
    mail_ops.scrub_mail_history(conn, row.id)
    mail_ops.cancel_mail(conn, row.id, now=now, reason="erased")
    consent_ops.anonymise(conn, row.id)
    consent_ops.record(conn, subscriber_id=row.id, action="erase", channel=channel, now=now)
    subscriber_ops.remove(conn, row.id)
    suppression_ops.add(conn, settings, row.email, reason="erased", now=now)


@dataclass
class RetentionReport:
    """What one retention pass removed."""

    erased: int = 0
    webhook_events: int = 0


def apply_retention(engine: Engine, settings: Settings, now: datetime) -> RetentionReport:
    """Erases the people unsubscribed more than ``RETENTION_UNSUBSCRIBED_DAYS`` ago.

    Exactly as :func:`erase` does (only the keyed-hash suppression stays, so a later
    sign-up needs a fresh double opt-in), in batches of short transactions; then
    drops webhook events older than :data:`WEBHOOK_EVENT_DAYS`. Housekeeping runs it.
    """
    report = RetentionReport()
    cutoff = now - timedelta(days=settings.retention_unsubscribed_days)
    while True:
        erased = 0
        with engine.begin() as conn:
            due = retention_ops.unsubscribed_before(conn, cutoff, limit=RETENTION_BATCH)
            for subscriber_id in due:
                row = subscriber_ops.by_id(conn, subscriber_id, for_update=True)
                if row is not None and retention_ops.still_due(row, cutoff):
                    erase_row(conn, settings, row, now=now, channel="retention")
                    erased += 1
        report.erased += erased
        if len(due) < RETENTION_BATCH or not erased:
            break
    with engine.begin() as conn:
        report.webhook_events = retention_ops.prune_webhook_events(
            conn, now - timedelta(days=WEBHOOK_EVENT_DAYS)
        )
    if report.erased or report.webhook_events:
        log.info(
            f"retention: {report.erased} unsubscribed subscriber(s) erased, "
            f"{report.webhook_events} webhook event(s) dropped",
            extra={"erased": report.erased, "webhook_events": report.webhook_events},
        )
    return report
