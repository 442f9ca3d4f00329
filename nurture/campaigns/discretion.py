"""The discretion check: words that would expose the topic on a lock screen.

An entry matches any word that *starts* with it, case-insensitively, at a word
boundary: ``sex`` matches "Sexual" but not "Sussex"; ``therap`` matches "therapist".
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
    # Longest entries first, so "sexual" is reported rather than "sex" when both are listed.
    pattern = re.compile(
        r"(?<!\w)(" + "|".join(re.escape(e) for e in entries) + r")\w*", re.IGNORECASE
    )
    return [Exposure(m.group(0), m.group(1).lower()) for m in pattern.finditer(text)]
