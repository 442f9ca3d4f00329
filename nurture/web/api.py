"""``POST /api/events/booked``: a booking tool tells us a reader booked.

The reader's sequences that list ``booked`` in ``stop_when`` stop (see
:mod:`nurture.subscriptions.goals`). The caller proves itself with
``Authorization: Bearer KEY``; only the SHA-256 of each key is configured
(``API_KEYS``, made by ``nurture api-key new``), and every configured hash is compared in
constant time. The answer is the same whether or not the address is known, so the
endpoint tells nobody who is on the list, and a repeat changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from nurture.runtime.services import Services
from nurture.subscriptions import goals
from nurture.web.forms import BodyTooLarge, read_body
from nurture.web.pages import Pages
from nurture.web.ratelimit import SlidingWindow, rate_key

PREFIX = "sha256:"
MAX_BODY = 4096
_HEADERS = {"Cache-Control": "no-store"}
#: Per client network: a booking tool sends a handful a day; a guesser gets nowhere.
_LIMIT = SlidingWindow(60, 60.0)


def hash_key(key: str) -> str:
    """The ``API_KEYS`` entry for ``key``: only this is stored, never the key."""
    return PREFIX + hashlib.sha256(key.encode()).hexdigest()


def authorised(header: str, configured: list[str]) -> bool:
    """Does ``Authorization: Bearer KEY`` name a configured key? Constant time."""
    scheme, _, key = header.strip().partition(" ")
    presented = hash_key(key.strip()).encode()
    found = False
    for entry in configured:  # every entry compared: timing says nothing about which
        found |= hmac.compare_digest(presented, entry.strip().lower().encode())
    return scheme.lower() == "bearer" and bool(key.strip()) and found


def _answer(status: int, message: str) -> Response:
    return JSONResponse({"status": message}, status, headers=_HEADERS)


async def booked(request: Request) -> Response:
    services: Services = request.app.state.services
    retry = _LIMIT.hit(rate_key(Pages.of(request).client_ip(request)))
    if retry is not None:
        return JSONResponse(
            {"status": "too many requests"}, 429, headers={**_HEADERS, "Retry-After": str(retry)}
        )
    keys = services.settings.api_keys
    if not keys or not authorised(request.headers.get("authorization", ""), keys):
        return JSONResponse(
            {"status": "unauthorised"}, 401, headers={**_HEADERS, "WWW-Authenticate": "Bearer"}
        )
    try:
        data = json.loads(await read_body(request, MAX_BODY))
    except BodyTooLarge:
        return _answer(413, "body too large")
    except (ValueError, UnicodeDecodeError):
        return _answer(400, 'expected JSON: {"email": "reader@example.org"}')
    email = data.get("email") if isinstance(data, dict) else None
    if not isinstance(email, str) or "@" not in email or len(email) > 320:
        return _answer(400, 'expected JSON: {"email": "reader@example.org"}')
    await run_in_threadpool(
        goals.reached,
        services.engine,
        services.catalogue,
        email,
        goals.BOOKED,
        now=services.clock(),
    )
    return _answer(202, "accepted")


def routes() -> list[BaseRoute]:
    return [Route("/api/events/booked", booked, methods=["POST"])]
