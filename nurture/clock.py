"""The one source of "now".

Core code takes ``now`` as an argument or a :data:`Clock` it is given; only the wiring
(:func:`nurture.runtime.services.build_services`) picks :func:`utcnow` as the default,
so a test moves time by handing over another clock and never reads the real one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

#: A function that returns the current instant, timezone-aware in UTC.
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The real clock: the current instant in UTC."""
    return datetime.now(UTC)
