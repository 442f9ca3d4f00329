"""Server-rendered SVG charts for the dashboard: no script, no library, no CDN.

Each function returns markup ready to place in a page. Charts carry an accessible name
(``role="img"`` and ``aria-label``) and the page shows the same numbers as a table, so
nothing is said by colour or shape alone. Text inside an SVG scales with its width,
so labels that must stay readable on a phone live in HTML around the chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from html import escape

from markupsafe import Markup

#: The three weekly series: key in the stats, label, colour (each at least 3:1 on white).
SERIES = (
    ("signups", "Sign-ups", "#8a6d1f"),
    ("confirmations", "Confirmed", "#2f5d62"),
    ("unsubscribes", "Unsubscribed", "#b5473a"),
)


def weekly_bars(weeks: Sequence[dict[str, object]], *, label: str) -> Markup:
    """Grouped bars, one group per week, one bar per :data:`SERIES`; ``label`` names it."""
    width, height, top, bottom, left = 640, 220, 14, 34, 46
    plot_h = height - top - bottom
    values = [int(str(w[key])) for w in weeks for key, _, _ in SERIES]
    peak = _nice(max(values, default=0))
    group = (width - left) / max(len(weeks), 1)
    bar = group * 0.8 / len(SERIES)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}" preserveAspectRatio="xMidYMid meet">'
    ]
    for tick in (0, peak // 2, peak):
        y = top + plot_h - plot_h * tick / peak
        parts.append(
            f'<line x1="{left}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4dfd6"/>'
            f'<text x="{left - 6}" y="{y + 5:.1f}" text-anchor="end" class="tick">{tick}</text>'
        )
    for i, week in enumerate(weeks):
        x0 = left + i * group + group * 0.1
        for j, (key, name, colour) in enumerate(SERIES):
            value = int(str(week[key]))
            h = plot_h * value / peak
            parts.append(
                f'<rect x="{x0 + j * bar:.1f}" y="{top + plot_h - h:.1f}" width="{bar - 1:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{escape(name)}, week of '
                f"{_day(str(week['week']))}: {value}</title></rect>"
            )
        if i % 2 == (len(weeks) - 1) % 2:  # every other week, always the latest
            last = i == len(weeks) - 1
            x = width if last else x0 + group * 0.4
            parts.append(
                f'<text x="{x:.1f}" y="{height - 8}" text-anchor="{"end" if last else "middle"}" '
                f'class="tick">{_day(str(week["week"]))}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def bar(value: int, peak: int, colour: str, *, label: str) -> Markup:
    """One horizontal bar as wide as ``value`` is of ``peak`` (a table cell's chart)."""
    share = 0.0 if peak <= 0 else max(0.0, min(1.0, value / peak))
    return Markup(
        f'<svg class="bar" viewBox="0 0 100 10" preserveAspectRatio="none" role="img" '
        f'aria-label="{escape(label)}"><rect width="100" height="10" fill="#efebe4"/>'
        f'<rect width="{share * 100:.2f}" height="10" fill="{colour}"/></svg>'
    )


def _nice(peak: int) -> int:
    """A round top for the axis at or above ``peak`` (never 0), even so its half is whole."""
    if peak <= 4:
        return 4
    step = 10 ** (len(str(peak)) - 1)
    for multiple in (1, 2, 4, 5, 6, 8, 10):
        if peak <= multiple * step:
            return multiple * step
    return 10 * step


def _day(iso: str) -> str:
    """``2026-03-02`` -> ``2 Mar``."""
    moment = date.fromisoformat(iso)
    return f"{moment.day} {moment:%b}"
