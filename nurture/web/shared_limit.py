"""The sign-up rate limit, in memory or shared through PostgreSQL.

With SQLite there is one service process (the file is local), so the in-memory
:class:`~nurture.web.ratelimit.SlidingWindow` is exact. With PostgreSQL any number of
web processes may serve the form; each keeping its own count would multiply the limit
by their number, so they count together in the database (:mod:`nurture.store.rate_limits`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from sqlalchemy import Engine

from nurture.settings import Settings
from nurture.store import rate_limits
from nurture.web.ratelimit import SlidingWindow


class Limiter(Protocol):
    #: Whether :meth:`hit` waits on I/O (a query), and so belongs off the event loop.
    waits: bool

    def hit(self, key: str) -> int | None:
        """Counts one request; ``None`` when allowed, else whole seconds until one is."""
        ...


class DatabaseWindow:
    """:class:`SlidingWindow`'s rule, counted in the database for every process."""

    waits = True

    def __init__(
        self, engine: Engine, limit: int, window: float, *, clock: Callable[[], datetime]
    ) -> None:
        self.engine = engine
        self.limit = limit
        self.window = window
        self.clock = clock

    def hit(self, key: str) -> int | None:
        with self.engine.begin() as conn:
            return rate_limits.hit(
                conn, key, limit=self.limit, window=self.window, now=self.clock()
            )


def sign_up_limiter(settings: Settings, engine: Engine, clock: Callable[[], datetime]) -> Limiter:
    """The limiter of ``POST /subscribe``: shared on PostgreSQL, in memory on SQLite."""
    limit, window = settings.subscribe_rate_limit, settings.subscribe_rate_window_seconds
    if engine.dialect.name == "postgresql":
        return DatabaseWindow(engine, limit, window, clock=clock)
    return SlidingWindow(limit, window)
