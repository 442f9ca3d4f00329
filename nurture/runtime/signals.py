"""SIGTERM and SIGINT, caught from the first line of ``nurture serve`` on.

A stop asked for while the service is still starting (settings, migrations, loading
the campaigns) must end it cleanly with status 0, like a stop once it runs: systemd
and container runtimes send SIGTERM whenever they like. Python's default would kill
the process with status 143 before any handler of the server was installed.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)


class StopSignals:
    """Records a stop signal and runs the callbacks registered for it, once each."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def install(self) -> StopSignals:
        """Replaces the default handlers of SIGTERM and SIGINT (main thread only)."""
        signal.signal(signal.SIGTERM, self._received)
        signal.signal(signal.SIGINT, self._received)
        return self

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Runs ``callback`` when a stop arrives, or at once if one already did."""
        with self._lock:
            self._callbacks.append(callback)
            stopped = self.event.is_set()
        if stopped:
            callback()

    @property
    def stopped(self) -> bool:
        return self.event.is_set()

    def _received(self, signum: int, _frame: FrameType | None) -> None:
        # uvicorn captures the signal while it runs and raises it again once it has
        # shut down; landing here then means "stop the rest too", not "die now".
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        with self._lock:
            self.event.set()
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()
