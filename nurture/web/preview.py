"""``/preview``: the therapist's view of every email, as a sample subscriber gets it.

Campaign files are read again on every request (they are small), so an edited file
shows on the next reload without restarting the service. The index also runs
``nurture check`` and lists its ``path:line: message`` lines, errors and warnings; while
an error stops the files loading, every preview page shows those lines instead of an
error page. The emails go through the real :class:`~nurture.rendering.Renderer` and
are personalised for the sample subscriber that ``nurture preview`` uses ("Sam", with
made-up ``SAMPLE-TOKEN`` links).

Open in development and test. In production it sits behind HTTP Basic auth with
``PREVIEW_USERNAME`` and ``PREVIEW_PASSWORD``, and does not exist at all (404) while
either is unset, so it can never be open by accident.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from nurture.campaigns import NEWSLETTERS, Catalogue, Newsletter, Step, check, load_catalogue
from nurture.exceptions import CampaignError, NurtureError
from nurture.rendering import Renderer
from nurture.rendering.preview import sample_recipient, sender_for
from nurture.runtime.services import Services
from nurture.settings import Settings
from nurture.web.errors import error_response
from nurture.web.ratelimit import FailureLock, rate_key
from nurture.web.templating import get_templates

logger = logging.getLogger(__name__)

#: The widths the step page shows each email at: a desktop client and a phone.
WIDTHS = (("Desktop", 600), ("Phone", 375))

_REALM = 'Basic realm="nurture preview", charset="UTF-8"'
_OPERATOR_HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex, nofollow"}


def sample_values(settings: Settings, catalogue: Catalogue, campaign: str) -> dict[str, str]:
    """The placeholder values of the sample subscriber (the one ``nurture preview`` uses)."""
    fallback = catalogue.first_name_fallback(campaign)
    return sample_recipient(settings, fallback=fallback).values


def humanise_delay(delay: timedelta) -> str:
    """``timedelta(days=3)`` -> ``"3 days after the previous email"``; zero -> ``"at once"``."""
    seconds = int(delay.total_seconds())
    if seconds <= 0:
        return "at once"
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return " ".join(parts or ["under a minute"]) + " after the previous email"


@dataclass(frozen=True)
class Entry:
    """One email on the index: where it lives and what the reader sees first."""

    campaign: str
    slug: str
    number: int
    subject: str
    preheader: str
    when: str


def authorise(request: Request, settings: Settings) -> Response | None:
    """``None`` when the request may see the preview, else the answer to give (401/404)."""
    if settings.env != "production":
        return None
    username = settings.preview_username
    password = settings.preview_password.get_secret_value() if settings.preview_password else ""
    if not username or not password:
        return error_response(request, 404)
    failures: FailureLock = request.app.state.login_failures
    client = rate_key(request.client.host if request.client else "unknown")
    wait = failures.locked(client)
    if wait is not None:
        # Locked out: the password is not even compared until the lock ages out.
        return error_response(request, 429, headers={"Retry-After": str(wait)})
    given_user, given_password = _basic_credentials(request.headers.get("authorization", ""))
    # Both compared every time, in constant time, so timing tells nothing about either.
    user_ok = hmac.compare_digest(given_user.encode(), username.encode())
    password_ok = hmac.compare_digest(given_password.encode(), password.encode())
    if user_ok and password_ok:
        failures.succeeded(client)
        return None
    if given_user or given_password:  # a browser's first, credential-less try is free
        time.sleep(failures.failed(client))  # a worker thread: the event loop runs on
    return error_response(request, 401, headers={"WWW-Authenticate": _REALM})


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded or len(encoded) > 1024:
        return "", ""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    user, _, password = decoded.partition(":")
    return user, password


def load(settings: Settings) -> Catalogue | None:
    """The catalogue as the files are now, or ``None`` when an error stops it loading."""
    try:
        return load_catalogue(settings)
    except CampaignError:
        return None


def problems(settings: Settings) -> list[str]:
    """What ``nurture check`` says about the files now, errors and warnings, as lines."""
    try:
        return [str(problem) for problem in check.check(settings)]
    except Exception as exc:  # the checker failing must not take the preview down
        logger.warning(
            "campaign check failed: %s",
            type(exc).__name__,
            extra={"action": "web.preview", "error_type": type(exc).__name__},
        )
        return [f"nurture check could not run ({type(exc).__name__}); run it in a terminal"]


def index_entries(catalogue: Catalogue, settings: Settings) -> dict[str, Any]:
    """What the index lists: campaigns with their steps, and the newsletters."""
    campaigns = []
    for campaign in catalogue.campaigns.values():
        steps = [
            Entry(
                campaign.slug,
                step.slug,
                number,
                step.subject,
                step.preheader,
                humanise_delay(step.delay),
            )
            for number, step in enumerate(campaign.steps, 1)
        ]
        campaigns.append({"campaign": campaign, "steps": steps})
    newsletters = [
        Entry(
            NEWSLETTERS,
            newsletter.slug,
            number,
            newsletter.subject,
            newsletter.preheader,
            _newsletter_when(newsletter, settings),
        )
        for number, newsletter in enumerate(
            sorted(catalogue.newsletters.values(), key=lambda n: n.send_at), 1
        )
    ]
    return {"campaigns": campaigns, "newsletters": newsletters}


def _local(moment: datetime, settings: Settings) -> str:
    return moment.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M %Z")


def _newsletter_when(newsletter: Newsletter, settings: Settings) -> str:
    when = f"sends {_local(newsletter.send_at, settings)}"
    if newsletter.not_after:
        when += f", not after {_local(newsletter.not_after, settings)}"
    return when


def _find(catalogue: Catalogue, campaign: str, slug: str) -> Step | Newsletter | None:
    try:
        return catalogue.content_for(campaign, slug)
    except CampaignError:
        return None


def _neighbours(catalogue: Catalogue, campaign: str, slug: str) -> tuple[str | None, str | None]:
    slugs = catalogue.step_slugs(campaign)
    index = slugs.index(slug)
    before = slugs[index - 1] if index > 0 else None
    after = slugs[index + 1] if index + 1 < len(slugs) else None
    return before, after


def index(request: Request) -> Response:
    """``GET /preview``: every email, and what ``nurture check`` says about the files."""
    settings = _settings(request)
    denied = authorise(request, settings)
    if denied:
        return denied
    catalogue = load(settings)
    context: dict[str, Any] = {
        "problems": problems(settings),
        "loaded": catalogue is not None,
        "campaigns": [],
        "newsletters": [],
    }
    if catalogue is not None:
        context.update(index_entries(catalogue, settings))
    return get_templates(settings).TemplateResponse(
        request, "operator/preview_index.html", context, headers=_OPERATOR_HEADERS
    )


def _located(request: Request) -> Response | tuple[Settings, Catalogue, Step | Newsletter]:
    """The settings, catalogue and email a preview URL names, or the answer to give
    instead (401/404, or the index when the files do not load)."""
    settings = _settings(request)
    denied = authorise(request, settings)
    if denied:
        return denied
    catalogue = load(settings)
    if catalogue is None:
        return index(request)
    item = _find(catalogue, request.path_params["campaign"], request.path_params["step"])
    if item is None:
        return error_response(request, 404)
    return settings, catalogue, item


def step_page(request: Request) -> Response:
    """``GET /preview/{campaign}/{step}``: one email at two widths, with its text part."""
    found = _located(request)
    if isinstance(found, Response):
        return found
    settings, catalogue, item = found
    campaign, slug = request.path_params["campaign"], request.path_params["step"]
    before, after = _neighbours(catalogue, campaign, slug)
    if isinstance(item, Newsletter):
        campaign_name, when = "Newsletter", _newsletter_when(item, settings)
    else:
        campaign_name, when = catalogue.campaign(campaign).name, humanise_delay(item.delay)
    sender = sender_for(settings, catalogue, campaign)
    context: dict[str, Any] = {
        "campaign": campaign,
        "campaign_name": campaign_name,
        "slug": slug,
        "subject": item.subject,
        "preheader": item.preheader,
        "from_name": sender.name,
        "from_email": sender.email,
        "when": when,
        "previous": before,
        "next": after,
        "widths": WIDTHS,
        "text": None,
        "problem": None,
    }
    try:
        content = Renderer(settings, catalogue).compile(campaign, slug)
    except NurtureError as exc:
        context["problem"] = str(exc)
    else:
        values = sample_values(settings, catalogue, campaign)
        context["text"] = content.personalise(values)[1]
    return get_templates(settings).TemplateResponse(
        request, "operator/preview_step.html", context, headers=_OPERATOR_HEADERS
    )


def step_html(request: Request) -> Response:
    """``GET /preview/{campaign}/{step}/html``: the email's HTML as the sample gets it."""
    found = _located(request)
    if isinstance(found, Response):
        return found
    settings, catalogue, _ = found
    campaign, slug = request.path_params["campaign"], request.path_params["step"]
    try:
        content = Renderer(settings, catalogue).compile(campaign, slug)
    except NurtureError as exc:
        return error_response(request, 500, str(exc), headers=_OPERATOR_HEADERS)
    html = content.personalise(sample_values(settings, catalogue, campaign))[0]
    # The email is our own output, but it has no business running scripts.
    headers = {**_OPERATOR_HEADERS, "Content-Security-Policy": "script-src 'none'"}
    return HTMLResponse(html, headers=headers)


def _settings(request: Request) -> Settings:
    services: Services = request.app.state.services
    return services.settings


def routes() -> list[BaseRoute]:
    """The preview routes: the index, a page per email and the email's raw HTML."""
    return [
        Route("/preview", index, methods=["GET"], name="preview_index"),
        Route("/preview/{campaign}/{step}", step_page, methods=["GET"], name="preview_step"),
        Route("/preview/{campaign}/{step}/html", step_html, methods=["GET"], name="preview_html"),
    ]
