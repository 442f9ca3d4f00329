"""``nurture subscribers export``: every subscriber as CSV, safe to open in a spreadsheet.

The columns are :data:`~nurture.subscriptions.importing.EXPORT_COLUMNS`, everything
``import`` needs to bring the same people back: status, consent source and date (from
their consent records), campaign and how far its sequence went, newsletters, time zone,
first name. It is not a backup (``nurture db backup`` is): erased addresses, kept only
as keyed hashes, and the mail history are not in it.
"""

from __future__ import annotations

import csv
import re
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import Engine, Row

from nurture.store import subscribers as subscriber_ops
from nurture.store.statuses import EnrolmentStatus, SubscriberStatus
from nurture.subscriptions.importing import EXPORT_COLUMNS, protect

#: The ``detail`` an import writes on its consent record (see ``importing``).
_IMPORTED = re.compile(r"^source: (?P<source>.*); consented: (?P<date>\S+)$", re.DOTALL)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def consent_evidence(row: Row[Any]) -> tuple[str, datetime | None]:
    """The consent source and date of one exported row.

    An imported person keeps the source and date their import gave; someone who signed
    up here has the double opt-in through the form (and its page), dated when they
    confirmed it (when they signed up, while pending).
    """
    if row.consent_action == "import" and (found := _IMPORTED.match(row.consent_detail or "")):
        return found["source"], datetime.fromisoformat(found["date"])
    if row.consent_action == "opt_in":
        where = f" at {row.consent_form_url}" if row.consent_form_url else ""
        source = f"double opt-in ({row.consent_channel}){where}"
        return source, row.confirmed_at or row.consent_at
    return "nurture (no consent record)", row.confirmed_at or row.created_at


def _campaign_step(row: Row[Any]) -> str:
    """How far a confirmed reader's sequence went: steps done while it runs, ``done``
    once it is over (or was never started: nothing more of it is due either way)."""
    if not row.source_campaign or row.status != SubscriberStatus.CONFIRMED:
        return ""
    if row.sequence_status in (None, EnrolmentStatus.COMPLETED, EnrolmentStatus.STOPPED):
        return "done"
    return str(row.sequence_next_step)


def export_csv(engine: Engine, out: TextIO) -> int:
    """Writes every subscriber as CSV to ``out`` (streamed); returns how many rows.

    Every text cell that would start a spreadsheet formula is prefixed with ``'``: the
    address too (``=cmd|'/Ccalc'!A0@example.com`` is a valid one), so such an address
    reads back with the ``'``.
    """
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    with engine.connect() as conn:
        for row in subscriber_ops.stream_for_export(conn):
            source, consented = consent_evidence(row)
            extra = {
                "campaign": row.source_campaign,
                "campaign_step": _campaign_step(row),
                "consent_source": source,
                "consent_date": consented,
            }
            values = [extra.get(name, getattr(row, name, None)) for name in EXPORT_COLUMNS]
            writer.writerow([protect(v) if isinstance(v, str) else _cell(v) for v in values])
            count += 1
    return count
