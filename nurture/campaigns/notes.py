"""Notes for the therapist inside a body: lines starting ``> NOTE:``.

``nurture new-campaign`` drafts each step as an outline: the article's key points,
quoted, on ``> NOTE:`` lines, for the therapist to rewrite in her own words. A note is
never meant for a reader, so ``nurture check`` refuses a published step (or a
newsletter, or a snippet) that still holds one; in a ``draft: true`` step it only
warns, so drafting in the live folder never holds up the service or the other files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: How a note line starts (after at most three spaces, as Markdown allows a quote).
MARKER = "> NOTE:"
_NOTE = re.compile(r"^ {0,3}>\s*NOTE:")


@dataclass(frozen=True)
class NoteBlock:
    """Consecutive note lines: ``line`` is the first one's 0-based index in the body."""

    line: int
    count: int


def note_line(text: str) -> str:
    """One note line holding ``text`` (made one line; no Jinja can start inside it)."""
    flat = " ".join(text.split())
    # A quoted article is not a template: "{{" in it must not be read as a variable.
    for opening in ("{{", "{%", "{#"):
        flat = flat.replace(opening, f"{opening[0]} {opening[1]}")
    return f"{MARKER} {flat}".rstrip()


def is_note(line: str) -> bool:
    return bool(_NOTE.match(line))


def note_blocks(body: str) -> list[NoteBlock]:
    """Every run of consecutive note lines in ``body``, in order."""
    blocks: list[NoteBlock] = []
    start: int | None = None
    lines = body.splitlines()
    for index, line in enumerate([*lines, ""]):
        if is_note(line):
            start = index if start is None else start
        elif start is not None:
            blocks.append(NoteBlock(start, index - start))
            start = None
    return blocks
