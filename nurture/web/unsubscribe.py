"""Unsubscribing: the link's page, the POST that acts (RFC 8058 one-click too), and undo.

A POST to a valid unsubscribe link always unsubscribes, whatever its body: the body
only tells an RFC 8058 one-click POST (or any other client) from the page's own form.
A one-click POST is answered with plain text: no redirect, no cookie, nothing to click.
"""

from __future__ import annotations

from typing import Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from nurture.exceptions import TokenError, TokenExpired
from nurture.web import forms, trial
from nurture.web.pages import PAGE_HEADERS, Pages, send_now_task

ONE_CLICK = ("List-Unsubscribe", "One-Click")
ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"
_PURPOSE: Final = "unsubscribe"


async def unsubscribe_page(request: Request) -> Response:
    """``GET /unsubscribe/{token}``: the page with the unsubscribe button."""
    pages = Pages.of(request)
    token = request.path_params["token"]
    tokens = pages.services.tokens
    try:
        public_id = tokens.read(_PURPOSE, token, now=pages.now())
    except TokenError as exc:
        return pages.invalid_link(request, _PURPOSE, exc)
    preferences_token = tokens.make("preferences", public_id, now=pages.now())
    context = {"preferences_url": f"/preferences/{preferences_token}"}
    if public_id == trial.TRIAL_PUBLIC_ID:
        context["trial_note"] = trial.NOTE
    return pages.render(request, "unsubscribe.html", context)


async def unsubscribe(request: Request) -> Response:
    """``POST /unsubscribe/{token}``: unsubscribes, from the page's form or one click."""
    pages = Pages.of(request)
    token = request.path_params["token"]
    # Whatever the body, a valid token unsubscribes: a mail client's one-click POST
    # that a strict parser would refuse must still stop the mail.
    one_click, own_form = await unsubscribe_kind(request)
    channel = "one_click" if one_click else "link"
    if trial.is_trial(pages, _PURPOSE, token):
        return trial.unsubscribed(pages, request, token, own_form=own_form)
    try:
        await run_in_threadpool(
            pages.services.subscriptions.unsubscribe, token, channel=channel, now=pages.now()
        )
    except TokenError as exc:
        if not own_form:
            status = 410 if isinstance(exc, TokenExpired) else 400
            return PlainTextResponse(
                "This unsubscribe link is not valid.", status, headers=PAGE_HEADERS
            )
        return pages.invalid_link(request, _PURPOSE, exc)
    if not own_form:
        # RFC 8058: answer directly; no redirect, no cookie, nothing to click.
        return PlainTextResponse("You are unsubscribed.", headers=PAGE_HEADERS)
    return pages.render(request, "unsubscribed.html", {"undo_url": f"/unsubscribe/{token}/undo"})


async def undo(request: Request) -> Response:
    """``POST /unsubscribe/{token}/undo``: asks to confirm the address again."""
    pages = Pages.of(request)
    token = request.path_params["token"]
    if trial.is_trial(pages, _PURPOSE, token):
        return pages.render(request, "resubscribe.html", {"trial_note": trial.NOTE})
    try:
        await forms.read_fields(request, allow_json=False)
        outbox_id = await run_in_threadpool(
            pages.services.subscriptions.undo, token, now=pages.now()
        )
    except forms.BadInput as exc:
        return pages.error(request, exc.status, exc.message)
    except TokenError as exc:
        return pages.invalid_link(request, _PURPOSE, exc)
    task = send_now_task(pages.services, outbox_id)
    return pages.render(request, "resubscribe.html", background=task)


async def unsubscribe_kind(request: Request) -> tuple[bool, bool]:
    """``(one_click, own_form)`` for a POST to an unsubscribe link; never raises.

    ``one_click``: the body says ``List-Unsubscribe=One-Click`` (RFC 8058), in a form,
    in multipart, or as the bare text some clients send with another content type.
    ``own_form``: a form without it (the page's button). Anything else (no readable
    body, JSON, a body too big) is neither, and is answered like a one-click POST.
    """
    try:
        body = await forms.read_body(request, forms.MAX_FORM_BODY)
    except (forms.BodyTooLarge, ClientDisconnect):
        return False, False
    marker = ONE_CLICK_BODY in body
    try:
        fields, _ = await forms.parse_fields(request, body, allow_json=False)
    except forms.BadInput:
        return marker, False
    value = fields.get(ONE_CLICK[0])
    one_click = marker or (isinstance(value, str) and value.strip() == ONE_CLICK[1])
    return one_click, not one_click


def routes() -> list[BaseRoute]:
    """The unsubscribe routes."""
    return [
        Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"], name="unsubscribe_page"),
        Route("/unsubscribe/{token}", unsubscribe, methods=["POST"], name="unsubscribe"),
        Route("/unsubscribe/{token}/undo", undo, methods=["POST"], name="unsubscribe_undo"),
    ]
