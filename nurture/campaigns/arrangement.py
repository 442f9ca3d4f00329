"""What a new order of steps means for the readers already in a sequence.

An enrolment remembers *how many* steps a reader has had (its position), and planning
sends the step found at that position in the current order; a step found there that the
reader already had is passed over (planning settles it as sent). An email already queued
for a reader still goes out when its step still exists (and the reader then continues
after that step's new place); a queued email of a removed step is cancelled.

:func:`effects` replays those rules for each group of readers, so the studio can say,
before the therapist confirms, who gets what next and who will never get which email.
Pure: positions and queued counts are passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Effect:
    """What happens to ``readers`` readers who have had ``had`` emails so far."""

    readers: int
    had: int
    #: The email already queued for them that still goes out first (``None``: none).
    queued: str | None
    #: The next emails they will get, in order, under the new arrangement.
    upcoming: tuple[str, ...]
    #: Emails of the new arrangement they will never get (placed before where they are).
    missed: tuple[str, ...]
    #: Their queued email, when its step is removed: it is cancelled.
    cancelled: str | None = None

    @property
    def next(self) -> str | None:
        return self.queued or (self.upcoming[0] if self.upcoming else None)


def effects(
    old: Sequence[str],
    new: Sequence[str],
    positions: Mapping[int, int],
    queued: Mapping[str, int],
) -> list[Effect]:
    """For each position with readers, what the change from ``old`` to ``new`` does.

    ``old`` and ``new`` are the sendable steps (drafts left out) in order;
    ``positions`` counts readers by how many steps they have had; ``queued`` counts
    emails already queued by step (they belong to the readers at that step's position).
    Only groups whose future changes are returned.
    """
    found = []
    for had, readers in sorted(positions.items()):
        waiting = old[had] if had < len(old) else None
        with_queue = min(readers, queued.get(waiting, 0)) if waiting else 0
        for count, is_queued in ((with_queue, True), (readers - with_queue, False)):
            if count <= 0:
                continue
            before = _replay(old, old, had, waiting if is_queued else None)
            after = _replay(old, new, had, waiting if is_queued else None)
            if before != after:
                queued_step, upcoming, missed, cancelled = after
                found.append(Effect(count, had, queued_step, upcoming, missed, cancelled))
    return found


def summary(old: Sequence[str], new: Sequence[str]) -> dict[str, list[str]]:
    """The steps added to and removed from the sendable order, and whether it moved."""
    added = [s for s in new if s not in old]
    removed = [s for s in old if s not in new]
    kept_old = [s for s in old if s in new]
    kept_new = [s for s in new if s in old]
    moved = [s for s, t in zip(kept_old, kept_new, strict=True) if s != t]
    return {"added": added, "removed": removed, "moved": moved}


def _replay(
    old: Sequence[str], new: Sequence[str], had: int, waiting: str | None
) -> tuple[str | None, tuple[str, ...], tuple[str, ...], str | None]:
    """(queued email still sent, upcoming, missed, cancelled queued email) for one reader."""
    sent = set(old[:had])
    # Planning finds a reader's place by the last step sent, by name (see
    # ``Campaign.position_after``): the same rule here.
    last = old[had - 1] if 0 < had <= len(old) else None
    position = list(new).index(last) + 1 if last is not None and last in new else had
    first, cancelled = None, None
    if waiting is not None:
        if waiting in new:
            first = waiting
            sent.add(waiting)
            position = list(new).index(waiting) + 1
        else:
            cancelled = waiting
    upcoming = tuple(s for s in new[position:] if s not in sent)
    missed = tuple(s for s in new[:position] if s not in sent)
    return first, upcoming, missed, cancelled
