"""The optional access log (``ACCESS_LOG=true``): one line per request, nothing personal.

uvicorn's own access log is off for good: it writes the client's full address and the
whole path, and the paths of the links in our emails carry tokens (``/confirm/<token>``)
that act for their reader. This one cuts every token from the path, drops the query
string, and masks the client's address to its network (``203.0.113.x``, ``2001:db8:1::/48``).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nurture.web.ratelimit import Network, client_ip

log = logging.getLogger("nurture.access")

#: Routes whose next path segment is a token or a signed id: cut at that segment.
_TOKEN_PATH = re.compile(r"^(/(?:confirm|unsubscribe|preferences|l)/)[^/]+")


def safe_path(path: str) -> str:
    """``/confirm/abc.def`` -> ``/confirm/…``; other paths as they are."""
    return _TOKEN_PATH.sub(r"\1…", path)


def mask_ip(address: str) -> str:
    """An IPv4 address without its last byte, an IPv6 one reduced to its /48."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((ip, 48), strict=False))
    four = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else ip
    return ".".join(str(four).split(".")[:3]) + ".x"


class AccessLogMiddleware:
    """Logs method, safe path, status, duration and the masked client (``nurture.access``)."""

    def __init__(self, app: ASGIApp, *, trusted: list[Network]) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless the app answers: then it is what it said

        async def recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            log.info(
                "%s %s %s",
                scope["method"],
                safe_path(scope["path"]),
                status,
                extra={
                    "method": scope["method"],
                    "path": safe_path(scope["path"]),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    "client": mask_ip(client_ip(Request(scope), self.trusted)),
                },
            )
