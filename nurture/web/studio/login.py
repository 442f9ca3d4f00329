"""The login page, logging out, and the studio's front page.

``GET /studio/login`` shows the form (bound to a short-lived cookie for its CSRF
token); ``POST /studio/login`` checks it (403 without a valid token, 429 while locked
out, 401 for a wrong password) and sets the session; ``POST /studio/logout`` ends it.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from nurture.web.errors import error_response
from nurture.web.studio import auth, views
from nurture.web.studio.auth import Session
from nurture.web.templating import get_templates


def _next(value: str | None) -> str:
    """Where to go after logging in: a studio address of ours, nothing else."""
    if value and value.startswith("/studio/") and "//" not in value and "\\" not in value:
        return value
    return "/studio/"


def _login_page(request: Request, context: dict[str, Any], status: int = 200) -> Response:
    settings = views.settings_of(request)
    token, cookie = auth.new_login_form(request)
    values = {"open": auth.mode(settings) == "open", "username": "", "problem": None}
    response = get_templates(settings).TemplateResponse(
        request,
        "studio/login.html",
        {**values, **context, "csrf": token},
        status_code=status,
        headers=views.HEADERS,
    )
    auth.bind_login_form(response, request, cookie)
    return response


async def login(request: Request) -> Response:
    """``GET``: the form; ``POST``: checks it and starts a session."""
    if not auth.available(request):
        return error_response(request, 404)
    target = _next(request.query_params.get("next"))
    if request.method == "GET":
        if auth.current_session(request) is not None:
            return RedirectResponse(target, 303)
        return _login_page(request, {"next": target})
    try:
        fields = await auth.read_form(request)
    except auth.Forbidden:
        return auth.forbidden(request)
    target = _next(fields.get("next"))
    if not auth.login_token_ok(request, fields.get("csrf_token", "")):
        problem = "The form had expired. Please try again."
        return _login_page(request, {"next": target, "problem": problem}, 403)
    username = fields.get("username", "").strip()
    result = await auth.attempt(request, username, fields.get("password", ""))
    if result.ok:
        response = RedirectResponse(target, 303)
        auth.start_session(response, request)
        return response
    context: dict[str, Any] = {"next": target, "username": username}
    if result.locked_for is not None:
        minutes = max(1, round(result.locked_for / 60))
        context["problem"] = (
            f"Too many attempts. For your safety the studio is locked for this device; "
            f"try again in about {minutes} minute{'s' if minutes != 1 else ''}."
        )
        locked = _login_page(request, context, 429)
        locked.headers["Retry-After"] = str(result.locked_for)
        return locked
    context["problem"] = "That user name and password do not match."
    return _login_page(request, context, 401)


@auth.login_required
async def logout(request: Request, session: Session) -> Response:
    """``POST /studio/logout``: ends the session."""
    await auth.verified_form(request, session)
    response = RedirectResponse("/studio/login", 303)
    auth.end_session(response, request)
    return response


async def studio_root(request: Request) -> Response:
    """``/studio`` without its slash: the front page."""
    if not auth.available(request):
        return error_response(request, 404)
    return RedirectResponse("/studio/", 308)
