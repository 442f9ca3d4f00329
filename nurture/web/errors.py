"""Error answers: small friendly pages (or JSON), and a catch-all that never leaks.

The pages are built here from a string rather than a template file on purpose: an
error page must still work when the templates folder is the thing that is broken.

:class:`CatchAllMiddleware` turns any unexpected exception into a generic 500 page and
logs it without personal data: the route's path *template* (``/unsubscribe/{token}``,
never the token itself), the exception type and the code locations of the traceback,
but not the exception message, which may quote an address or a token (database
errors repeat their parameters). It answers instead of re-raising, so the server does
not print a second, unredacted traceback.
"""

from __future__ import annotations

import html
import logging
import traceback
from collections.abc import Mapping
from http import HTTPStatus

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

#: What a reader sees for the common statuses; anything else gets the HTTP phrase.
_MESSAGES: dict[int, tuple[str, str]] = {
    400: ("That request did not look right", "Please go back and try again."),
    401: ("Please sign in", "This page needs a user name and password."),
    403: ("Not allowed", "This request was refused."),
    404: ("Page not found", "There is nothing at this address. The link may be incomplete."),
    405: ("Not possible here", "This page cannot be used that way."),
    413: ("Too large", "The request was larger than this page accepts."),
    429: ("Too many attempts", "Please wait a few minutes and try again."),
    500: ("Something went wrong", "Sorry, that did not work. Please try again in a little while."),
    503: ("Not available just now", "Please try again in a little while."),
}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>
body {{ font-family: Georgia, "Times New Roman", serif; color: #2f2f2f; background: #faf8f5;
  margin: 0; padding: 3rem 1.25rem; line-height: 1.6; }}
main {{ max-width: 32rem; margin: 0 auto; }}
h1 {{ font-weight: normal; font-size: 1.6rem; }}
p.code {{ color: #5f5f5f; font-size: 0.9rem; }}
</style>
</head>
<body>
<main>
<h1>{title}</h1>
<p>{message}</p>
<p class="code">Error {status}</p>
</main>
</body>
</html>
"""


def wants_json(request: Request) -> bool:
    """Whether the client asked for JSON rather than a page (``Accept`` or a JSON body)."""
    accept = request.headers.get("accept", "").lower()
    if "application/json" in accept and "text/html" not in accept:
        return True
    content_type = request.headers.get("content-type", "").lower()
    return content_type.startswith("application/json") and "text/html" not in accept


def error_response(
    request: Request,
    status: int,
    message: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A small error page (or ``{"error": ..., "status": ...}`` for JSON clients).

    ``message`` replaces the default sentence for ``status``; it is escaped, so it may
    come from anywhere, but it must never hold personal data.
    """
    title, default = _MESSAGES.get(status, (_phrase(status), ""))
    text = message or default
    if status in (204, 304) or status < 200:
        return Response(status_code=status, headers=headers)
    if wants_json(request):
        return JSONResponse({"error": text or title, "status": status}, status, headers=headers)
    page = _PAGE.format(title=html.escape(title), message=html.escape(text), status=status)
    return HTMLResponse(page, status, headers=headers)


async def http_exception(request: Request, exc: Exception) -> Response:
    """Exception handler for Starlette's ``HTTPException`` (404, 405 and any raised status)."""
    assert isinstance(exc, HTTPException)
    # Starlette's default detail is the bare HTTP phrase; ours reads better then.
    detail = exc.detail if exc.detail and exc.detail != _phrase(exc.status_code) else None
    return error_response(request, exc.status_code, detail, headers=exc.headers)


async def server_error(request: Request, exc: Exception) -> Response:
    """Last-resort handler for Starlette's outer error middleware: the generic 500 page.

    :class:`CatchAllMiddleware` normally answers first; this covers failures outside it.
    """
    log_unexpected(request.scope, exc)
    return error_response(request, 500)


def route_label(scope: Scope) -> str:
    """The matched route's name and path template, or ``unrouted``: safe to log."""
    route = scope.get("route")
    if isinstance(route, BaseRoute):
        name = getattr(route, "name", None) or "?"
        path = getattr(route, "path", None) or "?"
        return f"{name} {path}"
    return "unrouted"


def log_unexpected(scope: Scope, exc: BaseException) -> None:
    """Logs an unexpected exception with its route and code locations, never its message."""
    frames = traceback.extract_tb(exc.__traceback__)
    stack = " <- ".join(f"{f.filename}:{f.lineno} in {f.name}" for f in reversed(frames[-8:]))
    logger.error(
        "unexpected %s in %s %s",
        type(exc).__name__,
        scope.get("method", "?"),
        route_label(scope),
        extra={
            "action": "web.error",
            "route": route_label(scope),
            "error_type": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "stack": stack,
        },
    )


class CatchAllMiddleware:
    """Answers any unexpected exception with the generic 500 page (HTML or JSON)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log_unexpected(scope, exc)
            if started:
                # Half a response is out; the server will close the connection.
                return
            response = error_response(Request(scope), 500)
            await response(scope, receive, send)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
