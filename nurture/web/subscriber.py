"""The subscriber's pages: sign up, confirm, unsubscribe (one-click too), preferences.

Rules every route here keeps:

* A GET never changes anything (mail scanners and link previews follow links); the
  pages behind email links carry one button that POSTs.
* Sign-up answers exactly the same for every address, known or not; the honeypot
  answers like a success and does nothing.
* No page shows an address; no cookie is ever set; token pages are ``no-store`` and
  ``no-referrer`` so the token in the URL is neither cached nor passed on.
* Malformed input (bad JSON, wrong content type, bad UTF-8, a body over 64 KB, missing
  or non-string fields) gets a 4xx page or JSON answer, never a 500.
* A forged, wrong-purpose or erased-subscriber token gets the friendly invalid-link
  page with 400, an expired one with 410; nothing changes.
* A POST to a valid unsubscribe link always unsubscribes, whatever its body: the body
  only tells an RFC 8058 one-click POST (or any other client) from the page's own form.
* Pages never show a first name: until confirmation it was typed by a stranger.

Database work runs in the thread pool; the confirmation email is handed to
``Dispatcher.send_now`` in a background task after the answer is sent (it is queued in
the outbox first, so a provider outage only delays it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from markupsafe import Markup
from python_multipart.multipart import parse_options_header
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message

from nurture.exceptions import SubscriptionError, TokenError, TokenExpired
from nurture.runtime.services import Services
from nurture.subscriptions import SignUpRequest
from nurture.subscriptions import preferences as prefs
from nurture.subscriptions.validation import clean_first_name, clean_form_url, clean_user_agent
from nurture.web.ratelimit import SlidingWindow, client_ip, parse_networks, rate_key
from nurture.web.templating import get_templates

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
MAX_FIELDS = 30
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
JSON = "application/json"
ONE_CLICK = ("List-Unsubscribe", "One-Click")
ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"

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
ACCEPTED = "Thank you. Please check your inbox for an email to confirm your address."
NOTICES = {
    prefs.STOP_SEQUENCE: "Done: that series has stopped.",
    prefs.STOP_NEWSLETTERS: "Done: you won't receive the newsletter.",
    prefs.RESUME_NEWSLETTERS: "Done: you'll receive the newsletter again.",
    prefs.STOP_ALL: "Done: you're unsubscribed from everything.",
    prefs.PAUSE: "Done: all emails are paused for 30 days.",
    prefs.RESUME: "Done: your emails have resumed.",
    prefs.RESUBSCRIBE: "Please check your inbox: a confirmation email is on its way.",
}
ALREADY_SUBSCRIBED = "You're subscribed already: there is nothing to confirm."


class BadInput(Exception):
    """The request cannot be read; ``status`` is the 4xx to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise BadInput(413, "That was more than this form accepts.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise BadInput(413, "That was more than this form accepts.")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_fields(request: Request, *, allow_json: bool) -> tuple[dict[str, Any], str]:
    """The submitted fields and how they came (``form`` or ``json``); raises :class:`BadInput`.

    Form values are strings (the first of repeated names wins); JSON values are
    whatever the client sent, checked by the caller. An empty body without a content
    type reads as an empty form (a bare button POST).
    """
    return await _parse_fields(request, await _read_body(request), allow_json=allow_json)


async def _parse_fields(
    request: Request, body: bytes, *, allow_json: bool
) -> tuple[dict[str, Any], str]:
    """:func:`read_fields` for a body already read."""
    media = _media_type(request)
    if media == JSON or (allow_json and media.endswith("+json")):
        if not allow_json:
            raise BadInput(415, "This page accepts form submissions only.")
        try:
            data = json.loads(body.decode("utf-8"))
        except (ValueError, RecursionError):
            raise BadInput(400, "The JSON could not be read.") from None
        if not isinstance(data, dict):
            raise BadInput(400, "Expected a JSON object.")
        return data, "json"
    if media == FORM or (not media and not body):
        try:
            pairs = parse_qsl(
                body.decode("utf-8"),
                keep_blank_values=True,
                max_num_fields=MAX_FIELDS,
                errors="strict",
            )
        except (ValueError, UnicodeDecodeError):
            raise BadInput(400, "The form could not be read.") from None
        fields: dict[str, Any] = {}
        for name, value in pairs:
            fields.setdefault(name, value)
        return fields, "form"
    if media == MULTIPART:
        return await _multipart(request, body), "form"
    raise BadInput(415, "This kind of request is not accepted here.")


async def _multipart(request: Request, body: bytes) -> dict[str, Any]:
    _, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    # The parser accepts a body cut short; a complete one holds the close delimiter,
    # which an epilogue (ignored, RFC 2046) may follow.
    close = b"--" + boundary + b"--" if boundary else b""
    if not boundary or not (body.startswith(close) or b"\n" + close in body):
        raise BadInput(400, "The form could not be read.")
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=0, max_fields=MAX_FIELDS)
    except Exception:  # python-multipart and Starlette raise several types for bad input
        raise BadInput(400, "The form could not be read.") from None
    fields: dict[str, Any] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            raise BadInput(400, "Files are not accepted.")
        fields.setdefault(name, value)
    return fields


def _text(fields: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        if required:
            raise BadInput(400, f"The field {name!r} is missing.")
        return None
    if not isinstance(value, str):
        raise BadInput(400, f"The field {name!r} must be text.")
    return value


def _consent(value: Any) -> bool:
    if value is True:
        return True
    return isinstance(value, str) and value.strip().lower() in ("yes", "on", "true", "1")


async def _unsubscribe_kind(request: Request) -> tuple[bool, bool]:
    """``(one_click, own_form)`` for a POST to an unsubscribe link; never raises.

    ``one_click``: the body says ``List-Unsubscribe=One-Click`` (RFC 8058), in a form,
    in multipart, or as the bare text some clients send with another content type.
    ``own_form``: a form without it (the page's button). Anything else (no readable
    body, JSON, a body too big) is neither, and is answered like a one-click POST.
    """
    try:
        body = await _read_body(request)
    except (BadInput, ClientDisconnect):
        return False, False
    marker = ONE_CLICK_BODY in body
    try:
        fields, _ = await _parse_fields(request, body, allow_json=False)
    except BadInput:
        return marker, False
    value = fields.get(ONE_CLICK[0])
    one_click = marker or (isinstance(value, str) and value.strip() == ONE_CLICK[1])
    return one_click, not one_click


def _send_now(services: Services, outbox_id: int) -> None:
    """Sends the queued confirmation; a failure leaves the row for the scheduler."""
    try:
        services.dispatcher.send_now(outbox_id)
    except Exception as exc:
        log.warning(
            "confirmation not sent at once; the scheduler will retry",
            extra={"action": "send_now", "outbox_id": outbox_id, "error_type": type(exc).__name__},
        )


def routes(services: Services, *, clock: Callable[[], datetime] | None = None) -> list[BaseRoute]:
    """The subscriber routes, sharing one rate limiter for ``POST /subscribe``.

    ``clock`` gives "now" (tests pass a fixed one); raises ``ConfigurationError`` at once
    for a bad ``TRUSTED_PROXIES`` entry.
    """
    settings = services.settings
    subscriptions = services.subscriptions
    templates = get_templates(settings)
    trusted = parse_networks(settings.trusted_proxies)
    limiter = SlidingWindow(settings.subscribe_rate_limit, settings.subscribe_rate_window_seconds)
    now_of = clock or services.clock
    script = Markup(TZ_SCRIPT)  # our own constant: must not be HTML-escaped inside <script>
    campaigns = [{"slug": c.slug, "name": c.name} for c in services.catalogue.campaigns.values()]

    def page(
        request: Request,
        name: str,
        context: dict[str, Any] | None = None,
        status: int = 200,
        background: BackgroundTask | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        return templates.TemplateResponse(
            request,
            name,
            {"tz_script": script, **(context or {})},
            status_code=status,
            headers={**PAGE_HEADERS, **(headers or {})},
            background=background,
        )

    def error(
        request: Request, status: int, message: str, *, as_json: bool = False, **extra: Any
    ) -> Response:
        headers = {"Retry-After": str(extra.pop("retry_after"))} if "retry_after" in extra else {}
        if as_json:
            body = {"status": "error", "message": message, **extra}
            return JSONResponse(body, status, headers={**PAGE_HEADERS, **headers})
        titles = {
            404: "Page not found",
            413: "Too large",
            415: "Not accepted",
            429: "Too many attempts",
        }
        title = titles.get(status, "That did not work")
        return page(
            request,
            "error.html",
            {"title": title, "message": message, "status": status},
            status,
            headers=headers,
        )

    def invalid_link(
        request: Request, purpose: str, exc: TokenError, campaign: str | None = None
    ) -> Response:
        expired = isinstance(exc, TokenExpired)
        context = {
            "expired": expired,
            "purpose": purpose,
            "campaigns": campaigns,
            "campaign": campaign,
            "consent_wording": settings.consent_wording,
            "consent_version": settings.consent_version,
            "confirm_days": settings.confirm_token_days,
        }
        return page(request, "invalid_link.html", context, 410 if expired else 400)

    def form_context(slug: str, **extra: Any) -> dict[str, Any]:
        return {
            "campaign": slug,
            "campaign_name": services.catalogue.campaigns[slug].name,
            "consent_wording": settings.consent_wording,
            "consent_version": settings.consent_version,
            "action": "/subscribe",
            "form_url": f"{settings.base_url}/subscribe/{slug}",
            "error": None,
            "error_field": None,
            "first_name": None,
            **extra,
        }

    # -- sign-up ---------------------------------------------------------------------

    async def subscribe_form(request: Request) -> Response:
        slug = request.path_params["campaign"]
        if slug not in services.catalogue.campaigns:
            return error(request, 404, "There is no sign-up form at this address.")
        return page(request, "subscribe.html", form_context(slug))

    async def subscribe_snippet(request: Request) -> Response:
        slug = request.path_params["campaign"]
        if slug not in services.catalogue.campaigns:
            return error(request, 404, "There is no sign-up form at this address.")
        context = form_context(slug, action=f"{settings.base_url}/subscribe", form_url="")
        html = templates.get_template("snippet.html").render({"tz_script": script, **context})
        return PlainTextResponse(html, headers=PAGE_HEADERS)

    async def subscribe(request: Request) -> Response:
        as_json = _media_type(request) == JSON or "application/json" in request.headers.get(
            "accept", ""
        )
        ip = client_ip(request, trusted)
        retry = limiter.hit(rate_key(ip))
        if retry is not None:
            message = "Too many attempts from your network. Please try again in a few minutes."
            return error(request, 429, message, as_json=as_json, retry_after=retry)
        try:
            fields, channel = await read_fields(request, allow_json=True)
            as_json = channel == "json"
            if fields.get("website"):  # the honeypot: answer like a success, do nothing
                log.info("honeypot filled", extra={"action": "sign_up.honeypot"})
                return accepted(request, as_json)
            # Only a clean http(s) URL is evidence; anything else is dropped, not refused.
            form_url = clean_form_url(_text(fields, "form_url")) or clean_form_url(
                request.headers.get("referer")
            )
            sign_up = SignUpRequest(
                email=_text(fields, "email", required=True) or "",
                campaign=_text(fields, "campaign", required=True) or "",
                consent=_consent(fields.get("consent")),
                first_name=_text(fields, "first_name"),
                timezone=_text(fields, "tz") or _text(fields, "timezone"),
                form_url=form_url,
                ip=ip,
                user_agent=clean_user_agent(request.headers.get("user-agent")),
                channel=channel,
                consent_version=_text(fields, "consent_version"),
            )
        except BadInput as exc:
            return error(request, exc.status, exc.message, as_json=as_json)
        try:
            outbox_id = await run_in_threadpool(subscriptions.sign_up, sign_up, now=now_of())
        except SubscriptionError as exc:
            field = exc.context.get("field")
            if as_json:
                return error(request, 400, exc.message, as_json=True, field=field)
            if sign_up.campaign in services.catalogue.campaigns:
                context = form_context(
                    sign_up.campaign,
                    error=exc.message,
                    error_field=field,
                    first_name=clean_first_name(sign_up.first_name),
                )
                return page(request, "subscribe.html", context, 400)
            return error(request, 400, exc.message)
        task = BackgroundTask(_send_now, services, outbox_id) if outbox_id is not None else None
        return accepted(request, as_json, task)

    def accepted(request: Request, as_json: bool, task: BackgroundTask | None = None) -> Response:
        if as_json:
            body = {"status": "ok", "message": ACCEPTED}
            return JSONResponse(body, 202, headers=PAGE_HEADERS, background=task)
        return page(request, "check_inbox.html", {"message": ACCEPTED}, background=task)

    # -- confirmation ------------------------------------------------------------------

    async def confirm_page(request: Request) -> Response:
        token = request.path_params["token"]
        try:
            person = await run_in_threadpool(subscriptions.person, "confirm", token, now=now_of())
        except TokenError as exc:
            return invalid_link(request, "confirm", exc, await _campaign_of(exc))
        if person is None:
            return invalid_link(request, "confirm", TokenError(reason="unknown"))
        return page(request, "confirm.html")

    async def _campaign_of(exc: TokenError) -> str | None:
        public_id = exc.context.get("public_id") if isinstance(exc, TokenExpired) else None
        if not public_id:
            return None
        return await run_in_threadpool(subscriptions.source_campaign, public_id)

    async def confirm(request: Request) -> Response:
        token = request.path_params["token"]
        try:
            await read_fields(request, allow_json=False)
            result = await run_in_threadpool(
                subscriptions.confirm,
                token,
                now=now_of(),
                ip=client_ip(request, trusted),
                user_agent=clean_user_agent(request.headers.get("user-agent")),
            )
        except BadInput as exc:
            return error(request, exc.status, exc.message)
        except TokenError as exc:
            return invalid_link(request, "confirm", exc, await _campaign_of(exc))
        found = services.catalogue.campaigns.get(result.campaign or "")
        return page(request, "confirmed.html", {"campaign_name": found.name if found else None})

    # -- unsubscribe -------------------------------------------------------------------

    async def unsubscribe_page(request: Request) -> Response:
        token = request.path_params["token"]
        try:
            public_id = services.tokens.read("unsubscribe", token, now=now_of())
        except TokenError as exc:
            return invalid_link(request, "unsubscribe", exc)
        preferences_token = services.tokens.make("preferences", public_id, now=now_of())
        return page(
            request, "unsubscribe.html", {"preferences_url": f"/preferences/{preferences_token}"}
        )

    async def unsubscribe(request: Request) -> Response:
        token = request.path_params["token"]
        # Whatever the body, a valid token unsubscribes: a mail client's one-click POST
        # that a strict parser would refuse must still stop the mail.
        one_click, own_form = await _unsubscribe_kind(request)
        channel = "one_click" if one_click else "link"
        try:
            await run_in_threadpool(subscriptions.unsubscribe, token, channel=channel, now=now_of())
        except TokenError as exc:
            if not own_form:
                status = 410 if isinstance(exc, TokenExpired) else 400
                return PlainTextResponse(
                    "This unsubscribe link is not valid.", status, headers=PAGE_HEADERS
                )
            return invalid_link(request, "unsubscribe", exc)
        if not own_form:
            # RFC 8058: answer directly; no redirect, no cookie, nothing to click.
            return PlainTextResponse("You are unsubscribed.", headers=PAGE_HEADERS)
        return page(request, "unsubscribed.html", {"undo_url": f"/unsubscribe/{token}/undo"})

    async def undo(request: Request) -> Response:
        token = request.path_params["token"]
        try:
            await read_fields(request, allow_json=False)
            outbox_id = await run_in_threadpool(subscriptions.undo, token, now=now_of())
        except BadInput as exc:
            return error(request, exc.status, exc.message)
        except TokenError as exc:
            return invalid_link(request, "unsubscribe", exc)
        task = BackgroundTask(_send_now, services, outbox_id) if outbox_id is not None else None
        return page(request, "resubscribe.html", background=task)

    # -- preferences -------------------------------------------------------------------

    def preferences_page(
        request: Request,
        view: prefs.Preferences,
        status: int = 200,
        *,
        notice: str | None = None,
        error_message: str | None = None,
        task: BackgroundTask | None = None,
    ) -> Response:
        now = now_of()
        paused_until = None
        if view.paused(now) and view.paused_until is not None:
            day = view.paused_until
            paused_until = f"{day.day} {day:%B %Y}"
        context = {
            "prefs": view,
            "paused": view.paused(now),
            "paused_until": paused_until,
            "notice": notice,
            "error": error_message,
        }
        return page(request, "preferences.html", context, status, background=task)

    async def preferences_get(request: Request) -> Response:
        token = request.path_params["token"]
        try:
            view = await run_in_threadpool(subscriptions.preferences, token, now=now_of())
        except TokenError as exc:
            return invalid_link(request, "preferences", exc)
        if view is None:
            return invalid_link(request, "preferences", TokenError(reason="unknown"))
        return preferences_page(request, view)

    async def preferences_post(request: Request) -> Response:
        token = request.path_params["token"]
        try:
            fields, _ = await read_fields(request, allow_json=False)
        except BadInput as exc:
            return error(request, exc.status, exc.message)
        try:
            services.tokens.read("preferences", token, now=now_of())
        except TokenError as exc:
            return invalid_link(request, "preferences", exc)
        try:
            action = _text(fields, "action", required=True) or ""
            campaign = _text(fields, "campaign")
        except BadInput as exc:
            return error(request, exc.status, exc.message)
        try:
            change = await run_in_threadpool(
                subscriptions.change_preferences, token, action, campaign=campaign, now=now_of()
            )
        except TokenError as exc:
            return invalid_link(request, "preferences", exc)
        except SubscriptionError as exc:
            view = await run_in_threadpool(subscriptions.preferences, token, now=now_of())
            if view is None:
                return invalid_link(request, "preferences", TokenError(reason="unknown"))
            return preferences_page(request, view, 400, error_message=exc.message)
        if change is None:
            return invalid_link(request, "preferences", TokenError(reason="unknown"))
        task = None
        if change.outbox_id is not None:
            task = BackgroundTask(_send_now, services, change.outbox_id)
        notice = NOTICES.get(action) if change.changed else None
        if action == prefs.RESUBSCRIBE and not change.changed:
            # Nothing was queued: only an unsubscribed person is sent a confirmation.
            confirmed = change.preferences.status == "confirmed"
            notice = ALREADY_SUBSCRIBED if confirmed else None
        return preferences_page(request, change.preferences, notice=notice, task=task)

    return [
        Route("/subscribe/{campaign}", subscribe_form, methods=["GET"], name="subscribe_form"),
        Route(
            "/subscribe/{campaign}/snippet",
            subscribe_snippet,
            methods=["GET"],
            name="subscribe_snippet",
        ),
        Route("/subscribe", subscribe, methods=["POST"], name="subscribe"),
        Route("/confirm/{token}", confirm_page, methods=["GET"], name="confirm_page"),
        Route("/confirm/{token}", confirm, methods=["POST"], name="confirm"),
        Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"], name="unsubscribe_page"),
        Route("/unsubscribe/{token}", unsubscribe, methods=["POST"], name="unsubscribe"),
        Route("/unsubscribe/{token}/undo", undo, methods=["POST"], name="unsubscribe_undo"),
        Route("/preferences/{token}", preferences_get, methods=["GET"], name="preferences"),
        Route("/preferences/{token}", preferences_post, methods=["POST"], name="preferences_post"),
    ]
