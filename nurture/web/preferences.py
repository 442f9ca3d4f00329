"""The preferences page: ``GET`` shows where a person stands, ``POST`` changes one thing.

The page never shows an address or a first name. After a change, a notice says what
was done; an action that changed nothing gets no notice.
"""

from __future__ import annotations

from typing import Final

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from nurture.exceptions import SubscriptionError, TokenError
from nurture.store.statuses import SubscriberStatus
from nurture.subscriptions import preferences as prefs
from nurture.web import forms, trial
from nurture.web.pages import Pages, send_now_task

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
_PURPOSE: Final = "preferences"


def preferences_page(
    pages: Pages,
    request: Request,
    view: prefs.Preferences,
    status: int = 200,
    *,
    notice: str | None = None,
    error_message: str | None = None,
    task: BackgroundTask | None = None,
) -> Response:
    """The preferences page for ``view``, with an optional notice or error."""
    now = pages.now()
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
    return pages.render(request, "preferences.html", context, status, background=task)


async def preferences_get(request: Request) -> Response:
    """``GET /preferences/{token}``: the page; changes nothing."""
    pages = Pages.of(request)
    token = request.path_params["token"]
    if trial.is_trial(pages, _PURPOSE, token):
        return trial.preferences(pages, request, posted=False)
    try:
        view = await run_in_threadpool(
            pages.services.subscriptions.preferences, token, now=pages.now()
        )
    except TokenError as exc:
        return pages.invalid_link(request, _PURPOSE, exc)
    if view is None:
        return pages.invalid_link(request, _PURPOSE, TokenError(reason="unknown"))
    return preferences_page(pages, request, view)


async def preferences_post(request: Request) -> Response:
    """``POST /preferences/{token}``: applies the ``action`` field (one button's worth)."""
    pages = Pages.of(request)
    subscriptions = pages.services.subscriptions
    token = request.path_params["token"]
    try:
        fields, _ = await forms.read_fields(request, allow_json=False)
    except forms.BadInput as exc:
        return pages.error(request, exc.status, exc.message)
    if trial.is_trial(pages, _PURPOSE, token):
        return trial.preferences(pages, request, posted=True)
    try:
        pages.services.tokens.read(_PURPOSE, token, now=pages.now())
    except TokenError as exc:
        return pages.invalid_link(request, _PURPOSE, exc)
    try:
        action = forms.text(fields, "action", required=True) or ""
        campaign = forms.text(fields, "campaign")
    except forms.BadInput as exc:
        return pages.error(request, exc.status, exc.message)
    try:
        change = await run_in_threadpool(
            subscriptions.change_preferences, token, action, campaign=campaign, now=pages.now()
        )
    except TokenError as exc:
        return pages.invalid_link(request, _PURPOSE, exc)
    except SubscriptionError as exc:
        view = await run_in_threadpool(subscriptions.preferences, token, now=pages.now())
        if view is None:
            return pages.invalid_link(request, _PURPOSE, TokenError(reason="unknown"))
        return preferences_page(pages, request, view, 400, error_message=exc.message)
    if change is None:
        return pages.invalid_link(request, _PURPOSE, TokenError(reason="unknown"))
    notice = NOTICES.get(action) if change.changed else None
    if action == prefs.RESUBSCRIBE and not change.changed:
        # Nothing was queued: only an unsubscribed person is sent a confirmation.
        confirmed = change.preferences.status == SubscriberStatus.CONFIRMED
        notice = ALREADY_SUBSCRIBED if confirmed else None
    task = send_now_task(pages.services, change.outbox_id)
    return preferences_page(pages, request, change.preferences, notice=notice, task=task)


def routes() -> list[BaseRoute]:
    """The preferences routes."""
    return [
        Route("/preferences/{token}", preferences_get, methods=["GET"], name="preferences"),
        Route("/preferences/{token}", preferences_post, methods=["POST"], name="preferences_post"),
    ]
