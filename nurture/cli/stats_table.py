"""``nurture stats`` as labelled tables: the figures of :func:`nurture.store.stats.collect`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "  ") -> str:
    """Aligned columns under their headers: the first left-aligned, numbers to the right."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ]
        lines.append(indent + "  ".join(parts).rstrip())
    return "\n".join(lines)


def render(data: dict[str, Any]) -> str:
    """Every section of the statistics, one labelled table each."""
    out = ["Subscribers", table(["status", "people"], sorted(data["subscribers"].items()))]
    out += ["", "Per week (weeks start on Monday, UTC)"]
    out.append(
        table(
            ["week of", "sign-ups", "confirmed", "unsubscribed"],
            [
                (w["week"], w["signups"], w["confirmations"], w["unsubscribes"])
                for w in data["weeks"]
            ],
        )
    )
    for slug, campaign in data["campaigns"].items():
        out += ["", f"Sequence {slug}"]
        steps = [
            (f"{i}. {s['step']}", s["sent"], s["stopped_after"], s["clicks"], s["booked_after"])
            for i, s in enumerate(campaign["steps"], 1)
        ]
        headers = ["step", "reached (sent)", "stopped after", "link clicks", "booked after"]
        out.append(table(headers, steps))
        if campaign["stopped_before_first"]:
            out.append(f"  left before the first email: {campaign['stopped_before_first']}")
        if campaign["booked_before_first"]:
            out.append(f"  booked before the first email: {campaign['booked_before_first']}")
    if data["newsletters"]:
        out += ["", "Newsletters"]
        letters = [
            (slug, (n["sent_at"] or "not yet")[:10], n["sent"], n["clicks"], n["unsubscribes_7d"])
            for slug, n in data["newsletters"].items()
        ]
        headers = ["newsletter", "went out", "sent", "link clicks", "unsubscribes in 7 days"]
        out.append(table(headers, letters))
    queue = data["queue"]
    out += ["", "Queue"]
    out.append(
        table(
            ["due now", "scheduled", "sending", "unknown", "failed (30 days)"],
            [
                (
                    queue["due"],
                    queue["scheduled"],
                    queue["sending"],
                    queue["unknown"],
                    queue["failed"],
                )
            ],
        )
    )
    if queue["failed_reasons"]:
        out += ["", "Why sends failed (30 days)"]
        out.append(
            table(
                ["reason", "emails"], [(r["reason"], r["count"]) for r in queue["failed_reasons"]]
            )
        )
    return "\n".join(out)
