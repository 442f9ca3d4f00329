"""The Starlette application: every route, error handling and response headers.

:func:`create_app` is the one entry point (``nurture serve`` hands it to uvicorn,
tests serve it on loopback). ``debug`` is always off: a visitor never sees a
traceback, whatever the environment.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nurture import metrics
from nurture.mail.links import LinkIds
from nurture.runtime.services import Services
from nurture.web import (
    api,
    archive,
    devmail,
    errors,
    links,
    ops,
    preview,
    subscriber,
    webhooks,
)
from nurture.web.access import AccessLogMiddleware
from nurture.web.pages import Pages
from nurture.web.ratelimit import FailureLock
from nurture.web.studio import dashboard
from nurture.web.studio import routes as studio_routes

#: Sent with every answer unless a route set its own. Links in emails carry tokens in
#: their path, so no page may pass its URL on as a Referer.
SECURITY_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
}


def create_app(services: Services) -> Starlette:
    """The web app for ``services``: subscriber pages, preview, dev mail, webhook, ops.

    Registers the database-backed queue gauges for ``/metrics`` on ``services.engine``.
    Raises ``ConfigurationError`` at once when a configured key cannot be used.
    """
    metrics.watch_queue(services.engine)
    pages = Pages(services)
    routes: list[BaseRoute] = [
        *subscriber.routes(),
        *ops.routes(),
        *preview.routes(),
        *devmail.routes(services),
        *webhooks.routes(services),
        *links.routes(),
        *archive.routes(),
        *dashboard.routes(),
        *studio_routes(),
        *api.routes(),
    ]
    app = Starlette(
        debug=False,
        routes=routes,
        # Outermost first: the 500 page made by the catch-all gets the headers too.
        middleware=[
            *access_log(services, pages),
            Middleware(SecurityHeadersMiddleware, base_url=services.settings.base_url),
            Middleware(errors.CatchAllMiddleware),
        ],
        exception_handlers={
            HTTPException: errors.http_exception,
            Exception: errors.server_error,
        },
    )
    app.state.services = services
    app.state.pages = pages
    # Always, even with LINK_COUNTS off: links in mail already sent keep working.
    app.state.link_ids = LinkIds(services.settings.secret_key_values(), services.settings.base_url)
    app.state.login_failures = FailureLock()  # shared by every login form of this app
    return app


def access_log(services: Services, pages: Pages) -> list[Middleware]:
    """The access log's middleware when ``ACCESS_LOG`` is on (outermost: it sees the 500s)."""
    if not services.settings.access_log:
        return []
    return [Middleware(AccessLogMiddleware, trusted=pages.trusted)]


class SecurityHeadersMiddleware:
    """Adds :data:`SECURITY_HEADERS` to every HTTP answer that does not set them itself,
    and points every absolute redirect at ``BASE_URL``'s origin.

    Starlette builds redirects (``/preview/`` -> ``/preview``) from the request's
    ``Host`` header, which the client chooses: a forged one would send a visitor, or a
    cache in front of us, to another site. Only our own origin may appear there.
    """

    def __init__(self, app: ASGIApp, *, base_url: str) -> None:
        self.app = app
        origin = urlsplit(base_url)
        self.scheme, self.netloc = origin.scheme, origin.netloc

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                location = headers.get("location")
                if location and urlsplit(location).netloc and not scope.get(links.OFFSITE):
                    target = urlsplit(location)._replace(scheme=self.scheme, netloc=self.netloc)
                    headers["location"] = urlunsplit(target)
            await send(message)

        await self.app(scope, receive, send_with_headers)
