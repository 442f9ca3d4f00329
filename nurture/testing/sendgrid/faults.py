"""Scripted misbehaviour: the 429s, 5xx answers, slow answers and dropped connections.

A test queues :class:`Fault` objects with :meth:`FakeSendGrid.fail_next
<nurture.testing.sendgrid.server.FakeSendGrid.fail_next>`; each request takes the next
one, if any, off a :class:`FaultScript`. The server still works out its honest answer
first, so a fault can also say whether the mail counts as accepted, as when SendGrid
took it but the answer was lost on the way back.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    """One scripted answer; see :meth:`FakeSendGrid.fail_next`.

    ``status``: answer that instead of the honest answer. ``reset_in``: seconds until a
    429's ``X-RateLimit-Reset``. ``delay``: wait that long before answering. ``drop``:
    close the connection without answering. ``accept``: a valid request still counts
    as accepted despite ``status`` or ``drop``.
    """

    status: int | None = None
    reset_in: float = 1.0
    delay: float = 0.0
    drop: bool = False
    accept: bool = False

    @property
    def message(self) -> str:
        """The error message of the scripted answer."""
        return "too many requests" if self.status == 429 else "scripted failure"

    def headers(self) -> dict[str, str]:
        """The extra headers of the scripted answer: rate-limit ones on a 429."""
        if self.status != 429:
            return {}
        return {
            "X-RateLimit-Limit": "600",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(math.ceil(time.time() + self.reset_in)),
        }


class FaultScript:
    """The faults still to play, first in first out; safe across request threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()

    def add(self, fault: Fault, times: int = 1) -> None:
        """Queues ``fault`` for the next ``times`` requests after those already queued."""
        with self._lock:
            self._faults.extend([fault] * times)

    def next(self) -> Fault | None:
        """The fault for the request at hand, or ``None`` to answer honestly."""
        with self._lock:
            return self._faults.popleft() if self._faults else None
