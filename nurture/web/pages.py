"""What every subscriber page shares: headers, templates, error pages and "now".

One :class:`Pages` is built per app by :func:`nurture.web.app.create_app` and kept in
``app.state.pages``; handlers find it with :meth:`Pages.of`. It holds the one sign-up
rate limiter, so every worker of an app counts ``POST /subscribe`` together.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from datetime import datetime
from typing import Any

from markupsafe import Markup
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from nurture.exceptions import TokenError, TokenExpired
from nurture.runtime.services import Services
from nurture.web.ratelimit import client_ip, parse_networks
from nurture.web.shared_limit import sign_up_limiter
from nurture.web.templating import get_templates

log = logging.getLogger(__name__)

#: Fills the hidden time-zone and page-address fields; allowed by hash in the CSP.
TZ_SCRIPT = (
    "(function(){var s=document.currentScript,f=s&&s.closest('form');if(!f)return;"
    "try{f.elements.tz.value=Intl.DateTimeFormat().resolvedOptions().timeZone||''}"
    "catch(e){}var u=f.elements.form_url;"
    "if(u&&!u.value){u.value=location.origin+location.pathname}})();"
)
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(TZ_SCRIPT.encode()).digest()).decode()
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{_SCRIPT_HASH}'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
}
_TITLES = {
    404: "Page not found",
    413: "Too large",
    415: "Not accepted",
    429: "Too many attempts",
}


class Pages:
    """The subscriber pages' shared state and page helpers, one per app.

    Raises ``ConfigurationError`` at once for a bad ``TRUSTED_PROXIES`` entry.
    """

    def __init__(self, services: Services) -> None:
        settings = services.settings
        self.services = services
        self.templates = get_templates(settings)
        self.trusted = parse_networks(settings.trusted_proxies)
        # Shared by every process on PostgreSQL; in memory on SQLite.
        self.limiter = sign_up_limiter(settings, services.engine, services.clock)
        # Our own constant: it must not be HTML-escaped inside <script>.
        self.script = Markup(TZ_SCRIPT)

    @property
    def campaigns(self) -> list[dict[str, str]]:
        """The sequences to offer on a page (read each time: the catalogue reloads)."""
        return [
            {"slug": c.slug, "name": c.name} for c in self.services.catalogue.campaigns.values()
        ]

    @staticmethod
    def of(request: Request) -> Pages:
        """The :class:`Pages` of the app serving ``request``."""
        pages: Pages = request.app.state.pages
        return pages

    def now(self) -> datetime:
        """ "Now" for every handler: ``services.clock`` (tests pass a fixed one)."""
        return self.services.clock()

    def client_ip(self, request: Request) -> str:
        """The visitor's address, trusting ``X-Forwarded-For`` only from our proxies."""
        return client_ip(request, self.trusted)

    def render(
        self,
        request: Request,
        name: str,
        context: dict[str, Any] | None = None,
        status: int = 200,
        background: BackgroundTask | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Template ``name`` with :data:`PAGE_HEADERS` (plus ``headers``)."""
        return self.templates.TemplateResponse(
            request,
            name,
            {"tz_script": self.script, **(context or {})},
            status_code=status,
            headers={**PAGE_HEADERS, **(headers or {})},
            background=background,
        )

    def error(
        self, request: Request, status: int, message: str, *, as_json: bool = False, **extra: Any
    ) -> Response:
        """The error page (or JSON ``{"status": "error", ...}``) for ``status``.

        ``retry_after`` in ``extra`` becomes the ``Retry-After`` header; the rest of
        ``extra`` goes into the JSON body.
        """
        headers = {"Retry-After": str(extra.pop("retry_after"))} if "retry_after" in extra else {}
        if as_json:
            body = {"status": "error", "message": message, **extra}
            return JSONResponse(body, status, headers={**PAGE_HEADERS, **headers})
        title = _TITLES.get(status, "That did not work")
        context = {"title": title, "message": message, "status": status}
        return self.render(request, "error.html", context, status, headers=headers)

    def invalid_link(
        self, request: Request, purpose: str, exc: TokenError, campaign: str | None = None
    ) -> Response:
        """The friendly invalid-link page: 410 for an expired token, else 400."""
        settings = self.services.settings
        expired = isinstance(exc, TokenExpired)
        context = {
            "expired": expired,
            "purpose": purpose,
            "campaigns": self.campaigns,
            "campaign": campaign,
            "consent_wording": settings.consent_wording,
            "consent_version": settings.consent_version,
            "confirm_days": settings.confirm_token_days,
        }
        return self.render(request, "invalid_link.html", context, 410 if expired else 400)


def send_now_task(services: Services, outbox_id: int | None) -> BackgroundTask | None:
    """The background task that sends queued row ``outbox_id`` at once (``None``: nothing)."""
    return BackgroundTask(_send_now, services, outbox_id) if outbox_id is not None else None


def _send_now(services: Services, outbox_id: int) -> None:
    """Sends the queued confirmation; a failure leaves the row for the scheduler."""
    try:
        services.dispatcher.send_now(outbox_id)
    except Exception as exc:
        log.warning(
            "confirmation not sent at once; the scheduler will retry",
            extra={"action": "send_now", "outbox_id": outbox_id, "error_type": type(exc).__name__},
        )
