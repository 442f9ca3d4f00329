"""Confirmation: ``GET /confirm/{token}`` shows one button, ``POST`` confirms.

The GET changes nothing (mail scanners and link previews follow links). An expired
link's page offers the sign-up form of the campaign the person first signed up to.
"""

from __future__ import annotations

from typing import Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from nurture.exceptions import TokenError, TokenExpired
from nurture.subscriptions.validation import clean_user_agent
from nurture.web import forms
from nurture.web.pages import Pages

_PURPOSE: Final = "confirm"


async def confirm_page(request: Request) -> Response:
    """``GET /confirm/{token}``: the page with the confirm button."""
    pages = Pages.of(request)
    token = request.path_params["token"]
    try:
        person = await run_in_threadpool(
            pages.services.subscriptions.person, _PURPOSE, token, now=pages.now()
        )
    except TokenError as exc:
        return pages.invalid_link(request, _PURPOSE, exc, await _campaign_of(pages, exc))
    if person is None:
        return pages.invalid_link(request, _PURPOSE, TokenError(reason="unknown"))
    return pages.render(request, "confirm.html")


async def confirm(request: Request) -> Response:
    """``POST /confirm/{token}``: confirms the address and starts the campaign."""
    pages = Pages.of(request)
    token = request.path_params["token"]
    try:
        await forms.read_fields(request, allow_json=False)
        result = await run_in_threadpool(
            pages.services.subscriptions.confirm,
            token,
            now=pages.now(),
            ip=pages.client_ip(request),
            user_agent=clean_user_agent(request.headers.get("user-agent")),
        )
    except forms.BadInput as exc:
        return pages.error(request, exc.status, exc.message)
    except TokenError as exc:
        return pages.invalid_link(request, _PURPOSE, exc, await _campaign_of(pages, exc))
    found = pages.services.catalogue.campaigns.get(result.campaign or "")
    return pages.render(request, "confirmed.html", {"campaign_name": found.name if found else None})


async def _campaign_of(pages: Pages, exc: TokenError) -> str | None:
    """The campaign an expired token's subscriber signed up to, to offer its form again."""
    public_id = exc.context.get("public_id") if isinstance(exc, TokenExpired) else None
    if not public_id:
        return None
    return await run_in_threadpool(pages.services.subscriptions.source_campaign, public_id)


def routes() -> list[BaseRoute]:
    """The confirmation routes."""
    return [
        Route("/confirm/{token}", confirm_page, methods=["GET"], name="confirm_page"),
        Route("/confirm/{token}", confirm, methods=["POST"], name="confirm"),
    ]
