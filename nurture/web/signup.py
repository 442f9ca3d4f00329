"""Sign-up: the form, its embeddable snippet, and ``POST /subscribe``.

Sign-up answers exactly the same for every address, known or not; the honeypot answers
like a success and does nothing. The confirmation email is queued in the outbox by the
core and sent in a background task after the answer (a provider outage only delays it).
"""

from __future__ import annotations

import logging
from typing import Any

from markupsafe import Markup
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from nurture.exceptions import SubscriptionError
from nurture.settings import Settings
from nurture.subscriptions import SignUpRequest
from nurture.subscriptions.validation import clean_first_name, clean_form_url, clean_user_agent
from nurture.web import forms
from nurture.web.pages import PAGE_HEADERS, TZ_SCRIPT, Pages, send_now_task
from nurture.web.ratelimit import rate_key
from nurture.web.templating import get_templates

log = logging.getLogger(__name__)

ACCEPTED = "Thank you. Please check your inbox for an email to confirm your address."
_NO_FORM = "There is no sign-up form at this address."
_TOO_MANY = "Too many attempts from your network. Please try again in a few minutes."


def form_context(pages: Pages, slug: str, **extra: Any) -> dict[str, Any]:
    """The sign-up form's template context for campaign ``slug``; ``extra`` overrides."""
    settings = pages.services.settings
    return {
        "campaign": slug,
        "campaign_name": pages.services.catalogue.campaigns[slug].name,
        "consent_wording": settings.consent_wording,
        "consent_version": settings.consent_version,
        "action": "/subscribe",
        "form_url": f"{settings.base_url}/subscribe/{slug}",
        "error": None,
        "error_field": None,
        "first_name": None,
        **extra,
    }


async def subscribe_form(request: Request) -> Response:
    """``GET /subscribe/{campaign}``: the sign-up page."""
    pages = Pages.of(request)
    slug = request.path_params["campaign"]
    if slug not in pages.services.catalogue.campaigns:
        return pages.error(request, 404, _NO_FORM)
    return pages.render(request, "subscribe.html", form_context(pages, slug))


def signup_snippet(settings: Settings, slug: str, name: str) -> str:
    """The embeddable sign-up form of campaign ``slug`` (called ``name``), as HTML.

    What ``GET /subscribe/{campaign}/snippet`` answers; ``nurture new-campaign`` prints
    it for a campaign not yet in service.
    """
    context = {
        "campaign": slug,
        "campaign_name": name,
        "consent_wording": settings.consent_wording,
        "consent_version": settings.consent_version,
        "action": f"{settings.base_url}/subscribe",
        "form_url": "",
        "error": None,
        "error_field": None,
        "first_name": None,
        # Our own constant: it must not be HTML-escaped inside <script>.
        "tz_script": Markup(TZ_SCRIPT),
    }
    return get_templates(settings).get_template("snippet.html").render(context)


async def subscribe_snippet(request: Request) -> Response:
    """``GET /subscribe/{campaign}/snippet``: the form's HTML, to paste into another site."""
    pages = Pages.of(request)
    slug = request.path_params["campaign"]
    if slug not in pages.services.catalogue.campaigns:
        return pages.error(request, 404, _NO_FORM)
    name = pages.services.catalogue.campaigns[slug].name
    html = signup_snippet(pages.services.settings, slug, name)
    return PlainTextResponse(html, headers=PAGE_HEADERS)


async def subscribe(request: Request) -> Response:
    """``POST /subscribe``: a sign-up from the form or as JSON, rate limited per network."""
    pages = Pages.of(request)
    as_json = forms.media_type(request) == forms.JSON or forms.JSON in request.headers.get(
        "accept", ""
    )
    ip = pages.client_ip(request)
    limiter, key = pages.limiter, rate_key(ip)
    retry = await run_in_threadpool(limiter.hit, key) if limiter.waits else limiter.hit(key)
    if retry is not None:
        return pages.error(request, 429, _TOO_MANY, as_json=as_json, retry_after=retry)
    try:
        fields, channel = await forms.read_fields(request, allow_json=True)
        as_json = channel == "json"
        if fields.get("website"):  # the honeypot: answer like a success, do nothing
            log.info("honeypot filled", extra={"action": "sign_up.honeypot"})
            return _accepted(pages, request, as_json)
        sign_up = _sign_up_request(request, fields, channel, ip)
    except forms.BadInput as exc:
        return pages.error(request, exc.status, exc.message, as_json=as_json)
    try:
        outbox_id = await run_in_threadpool(
            pages.services.subscriptions.sign_up, sign_up, now=pages.now()
        )
    except SubscriptionError as exc:
        return _refused(pages, request, sign_up, exc, as_json)
    return _accepted(pages, request, as_json, send_now_task(pages.services, outbox_id))


def _sign_up_request(
    request: Request, fields: dict[str, Any], channel: str, ip: str
) -> SignUpRequest:
    """The sign-up in ``fields``; raises :class:`~nurture.web.forms.BadInput`."""
    text = forms.text
    # Only a clean http(s) URL is evidence; anything else is dropped, not refused.
    form_url = clean_form_url(text(fields, "form_url")) or clean_form_url(
        request.headers.get("referer")
    )
    return SignUpRequest(
        email=text(fields, "email", required=True) or "",
        campaign=text(fields, "campaign", required=True) or "",
        consent=forms.checked(fields.get("consent")),
        first_name=text(fields, "first_name"),
        timezone=text(fields, "tz") or text(fields, "timezone"),
        form_url=form_url,
        ip=ip,
        user_agent=clean_user_agent(request.headers.get("user-agent")),
        channel=channel,
        consent_version=text(fields, "consent_version"),
    )


def _refused(
    pages: Pages, request: Request, sign_up: SignUpRequest, exc: SubscriptionError, as_json: bool
) -> Response:
    """The answer to a sign-up the core refused: the form again, with the reason."""
    field = exc.context.get("field")
    if as_json:
        return pages.error(request, 400, exc.message, as_json=True, field=field)
    if sign_up.campaign in pages.services.catalogue.campaigns:
        context = form_context(
            pages,
            sign_up.campaign,
            error=exc.message,
            error_field=field,
            first_name=clean_first_name(sign_up.first_name),
        )
        return pages.render(request, "subscribe.html", context, 400)
    return pages.error(request, 400, exc.message)


def _accepted(
    pages: Pages, request: Request, as_json: bool, task: BackgroundTask | None = None
) -> Response:
    if as_json:
        body = {"status": "ok", "message": ACCEPTED}
        return JSONResponse(body, 202, headers=PAGE_HEADERS, background=task)
    return pages.render(request, "check_inbox.html", {"message": ACCEPTED}, background=task)


def routes() -> list[BaseRoute]:
    """The sign-up routes."""
    return [
        Route("/subscribe/{campaign}", subscribe_form, methods=["GET"], name="subscribe_form"),
        Route(
            "/subscribe/{campaign}/snippet",
            subscribe_snippet,
            methods=["GET"],
            name="subscribe_snippet",
        ),
        Route("/subscribe", subscribe, methods=["POST"], name="subscribe"),
    ]
