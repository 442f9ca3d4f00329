"""``send_days``: the days of the week a sequence (or one step) may be sent on.

Written by the therapist as ``weekdays``, ``weekends``, ``every day``, a range such
as ``mon-thu``, or a list (``[mon, wed, fri]``). Read into the weekday numbers of
:meth:`datetime.date.weekday` (Monday is 0); the reader's own calendar day decides,
in their time zone (see ``delivery.sequencing``).
"""

from __future__ import annotations

NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WORDS = {
    "weekdays": frozenset(range(5)),
    "weekends": frozenset({5, 6}),
    "every day": frozenset(range(7)),
    "daily": frozenset(range(7)),
}


def _day(word: str) -> int:
    key = word.strip().lower()[:3]
    if key not in NAMES or not word.strip().lower().startswith(key):
        raise ValueError(f"unknown day {word.strip()!r}: use mon, tue, wed, thu, fri, sat, sun")
    return NAMES.index(key)


def parse_send_days(value: object) -> frozenset[int]:
    """``"weekdays"``, ``"mon-fri"``, ``["mon", "wed"]`` -> weekday numbers.

    Raises ``ValueError`` with a message for the therapist on anything else, and on
    an empty set (a sequence that may never be sent).
    """
    if isinstance(value, list):
        days = frozenset(_day(str(item)) for item in value)
    elif isinstance(value, str) and value.strip().lower() in _WORDS:
        days = _WORDS[value.strip().lower()]
    elif isinstance(value, str) and "-" in value:
        first, _, last = value.partition("-")
        start, end = _day(first), _day(last)
        span = range(start, end + 1) if start <= end else [*range(start, 7), *range(end + 1)]
        days = frozenset(span)
    elif isinstance(value, str) and "," in value:
        days = frozenset(_day(part) for part in value.split(","))
    elif isinstance(value, str):
        days = frozenset({_day(value)})
    else:
        raise ValueError(f"send_days: expected 'weekdays', 'mon-fri' or a list, got {value!r}")
    if not days:
        raise ValueError("send_days names no day: the emails could never be sent")
    return days


def describe(days: frozenset[int] | None) -> str:
    """Plain words for a page: ``"every day"``, ``"weekdays"``, ``"mon, wed, fri"``."""
    if days is None or days == _WORDS["every day"]:
        return "every day"
    for word, named in _WORDS.items():
        if days == named:
            return word
    return ", ".join(NAMES[d] for d in sorted(days))
