"""A per-client rate limit for the sign-up form, and the client's IP address.

:class:`SlidingWindow` keeps, per key, the times of the requests it allowed during the
last ``window`` seconds (a sliding log): exact, and small for a form that allows a
handful of posts per address. It lives in the process's memory, so each process counts
on its own; that is enough to stop a script from mail-bombing an address through the
confirmation email, which is its purpose (the outbox allows one confirmation per
address per 10 minutes anyway).

:func:`client_ip` believes ``X-Forwarded-For`` only from a peer listed in
``TRUSTED_PROXIES``; otherwise anyone could rotate the header to escape the limit.
:func:`rate_key` counts an IPv6 client by its /64: one home or server gets a whole /64
and could otherwise take a fresh address for every request.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence

from starlette.requests import Request

from nurture.exceptions import ConfigurationError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SlidingWindow:
    """At most ``limit`` hits per ``window`` seconds per key.

    ``max_keys`` bounds the memory: past it, the keys idle the longest are forgotten
    (which can only ever let a request through, never refuse one wrongly).
    """

    waits = False  # memory only: cheaper to count on the event loop than to hand over

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 50_000,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str) -> int | None:
        """Counts one request; ``None`` when allowed, else whole seconds until one is."""
        now = self.clock()
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                hits = self._hits[key] = deque()
            self._hits.move_to_end(key)
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(1, math.ceil(hits[0] + self.window - now))
            hits.append(now)
            while len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)
            return None

    def peek(self, key: str) -> tuple[int, int | None]:
        """Hits of ``key`` in the window now, and the whole seconds until it may hit
        again (``None``: it may now), without counting a hit."""
        now = self.clock()
        with self._lock:
            hits = self._hits.get(key)
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            count = len(hits) if hits else 0
            if hits and count >= self.limit:
                return count, max(1, math.ceil(hits[0] + self.window - now))
            return count, None

    def forget(self, key: str) -> None:
        with self._lock:
            self._hits.pop(key, None)


def rate_key(address: str) -> str:
    """The key a client is counted under: its IPv4 address, or the /64 of its IPv6 one.

    An IPv4-mapped IPv6 address counts as the IPv4 address; anything that is not an IP
    address (``"unknown"``) is its own key.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def parse_networks(entries: Sequence[str]) -> list[Network]:
    """``TRUSTED_PROXIES`` (addresses or CIDR ranges) as networks; a bad entry is fatal."""
    networks: list[Network] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ConfigurationError(
                f"NURTURE_TRUSTED_PROXIES: {entry!r} is not an IP address or network"
            ) from exc
    return networks


def _within(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip(request: Request, trusted: Sequence[Network]) -> str:
    """The client's address: the peer, or what trusted proxies say in X-Forwarded-For.

    The header is read from the right (each proxy appends the address it saw): the first
    address not belonging to a trusted proxy is the client.
    """
    peer = request.client.host if request.client else "unknown"
    if not trusted or not _within(peer, trusted):
        return peer
    chain = [
        part.strip()
        for header in request.headers.getlist("x-forwarded-for")
        for part in header.split(",")
        if part.strip()
    ]
    for address in reversed(chain):
        if not _within(address, trusted):
            try:
                return str(ipaddress.ip_address(address))
            except ValueError:
                return peer  # garbage from a client: fall back to the proxy's own view
    return chain[0] if chain else peer


class FailureLock:
    """Repeated failed logins from one client: each failure past ``free`` is answered
    more slowly, and ``limit`` failures within ``window`` seconds lock the client out
    until the oldest of them ages out. A success clears the client's record.

    Guessing a password online then costs hours for a handful of tries, while a person
    who mistypes twice notices nothing.
    """

    def __init__(
        self,
        *,
        free: int = 3,
        limit: int = 10,
        window: float = 900.0,
        max_delay: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free = free
        self.max_delay = max_delay
        self._failures = SlidingWindow(limit, window, clock=clock)

    def locked(self, key: str) -> int | None:
        """Whole seconds until ``key`` may try again, or ``None`` when it may now."""
        return self._failures.peek(key)[1]

    def failed(self, key: str) -> float:
        """Records a failure; returns the seconds to wait before answering it."""
        self._failures.hit(key)
        count = self._failures.peek(key)[0]
        return 0.0 if count <= self.free else min(self.max_delay, 0.25 * 2 ** (count - self.free))

    def succeeded(self, key: str) -> None:
        self._failures.forget(key)
