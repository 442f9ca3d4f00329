"""``nurture subscribers export``: every subscriber as CSV, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import Engine

from nurture.store import subscribers as subscriber_ops
from nurture.subscriptions.gdpr import EXPORT_COLUMNS


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


#: What makes a spreadsheet read a cell as a formula (OWASP's list, and the full-width
#: forms some spreadsheets also accept).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def _safe_text(value: str) -> str:
    """Neutralises text a spreadsheet would run as a formula: prefixed with ``'``."""
    return "'" + value if value.startswith(_FORMULA_START) else value


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
        for row in subscriber_ops.stream_all(conn):
            values = [getattr(row, name) for name in EXPORT_COLUMNS]
            writer.writerow([_safe_text(v) if isinstance(v, str) else _cell(v) for v in values])
            count += 1
    return count
