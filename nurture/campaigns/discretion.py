"""The discretion check: words that would expose the topic on a lock screen.

Entries match case-insensitively at a word boundary. An entry ending in ``*`` matches
every word that starts with it (``sex*`` matches "Sexual" but not "Sussex";
``therap*`` matches "therapist"); any other entry matches the whole word and its plural
only (``sti`` matches "STIs" but not "still").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Exposure:
    """A word of the checked text (``found``) that matches a list entry (``entry``)."""

    found: str
    entry: str


def find_exposures(text: str, words: Iterable[str]) -> list[Exposure]:
    """Every word in ``text`` that starts with a listed entry, in order of appearance."""
    entries = sorted({w.strip().lower() for w in words if w.strip()}, key=len, reverse=True)
    if not entries or not text:
        return []
    # Longest entries first, so "sexual" is reported rather than "sex*" when both are listed.
    alternatives = [
        re.escape(e[:-1]) + r"\w*" if e.endswith("*") else re.escape(e) + r"(?:e?s)?(?!\w)"
        for e in entries
    ]
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(f"({a})" for a in alternatives) + ")", re.I)
    found = []
    for match in pattern.finditer(text):
        index = next(i for i, group in enumerate(match.groups()) if group is not None)
        found.append(Exposure(match.group(0), entries[index]))
    return found
