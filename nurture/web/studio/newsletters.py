"""Newsletters in the studio: write one, schedule it, see whom it reaches, cancel it.

A newsletter is a file in ``campaigns/newsletters/`` with ``send_at`` (the practice's
time zone) and optionally ``not_after``; saving one schedules it, exactly as if it had
been written by hand. Once it has started going out it can no longer be edited, only
cancelled: its file goes to the history and the emails still queued are cancelled by
the dispatcher's last check (the newsletter is no longer in the files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from nurture.campaigns import NEWSLETTERS, history, publishing
from nurture.campaigns.model import Catalogue, Newsletter
from nurture.runtime import reload
from nurture.store import audience, database
from nurture.store import planning as planning_ops
from nurture.web.errors import error_response
from nurture.web.studio import auth, drafts, views
from nurture.web.studio.auth import Session
from nurture.web.studio.views import SLUG

NEW_BODY = "Hello {{ first_name }},\n\n\n\nWarmly,\n{{ therapist_name }}\n"
NOTICES = {
    "saved": "Saved and scheduled.",
    "cancelled": "The newsletter is cancelled; it is kept in the history.",
    "restored": "The earlier version is back in place.",
}


def overview(request: Request, catalogue: Catalogue) -> list[dict[str, Any]]:
    """Every newsletter, soonest first, with where it stands (scheduled, sending, sent)."""
    services = views.services_of(request)
    now = services.clock()
    with database.reading(services.engine) as conn:
        started = audience.newsletters_started(conn, NEWSLETTERS)
        rows = []
        for letter in sorted(catalogue.newsletters.values(), key=lambda n: n.send_at):
            reach = planning_ops.audience_size(conn, send_at=max(letter.send_at, now))
            rows.append({"letter": letter, **_standing(letter, started, now), "reach": reach})
    return rows


def _standing(letter: Newsletter, started: dict[str, int], now: Any) -> dict[str, Any]:
    if letter.slug in started:
        state = "sending" if letter.not_after is None or now < letter.not_after else "sent"
        return {"state": state, "sent": started[letter.slug], "editable": False}
    if letter.not_after is not None and now >= letter.not_after:
        return {"state": "expired", "sent": 0, "editable": False}
    state = "due now" if letter.send_at <= now else "scheduled"
    return {"state": state, "sent": 0, "editable": True}


def fresh(context: dict[str, Any]) -> None:
    """An empty form is not an error: its problems show once she starts writing."""
    context["problems"] = []
    if context.get("preview") is not None:
        context["preview"].blocking = []


def _path(settings: Any, slug: str) -> Path:
    return Path(settings.campaigns_dir) / NEWSLETTERS / f"{slug}.md"


@auth.login_required
async def letter_page(request: Request, session: Session) -> Response:
    """``GET /studio/newsletters/{slug}``: the editor; ``POST`` saves (and reschedules)."""
    settings = views.settings_of(request)
    slug = request.path_params["slug"]
    path = _path(settings, slug)
    if not SLUG.match(slug) or not path.is_file():
        return error_response(request, 404)
    if request.method == "GET":
        draft, _ = drafts.from_file(path, drafts.NEWSLETTER_FIELDS)
        context = await run_in_threadpool(_context, request, slug, draft, None)
        context["notice"] = NOTICES.get(request.query_params.get("done", ""))
        return views.render(
            request, "newsletter.html", context, session=session, section="campaigns"
        )
    fields = await auth.verified_form(request, session)
    draft = drafts.from_fields(path, fields, drafts.NEWSLETTER_FIELDS)
    return await _save(request, session, slug, draft, fields.get("base"))


@auth.login_required
async def new_letter(request: Request, session: Session) -> Response:
    """``GET /studio/newsletters/new``: an empty newsletter; ``POST`` saves it."""
    settings = views.settings_of(request)
    services = views.services_of(request)
    if request.method == "GET":
        tomorrow = services.clock().astimezone(settings.zone).date().toordinal() + 1
        from datetime import date

        day = date.fromordinal(tomorrow).isoformat()
        fields = {"name": f"{day}-", "send_at": f"{day} 09:00", "body": NEW_BODY}
        draft = drafts.from_fields(_path(settings, "new"), fields, drafts.NEWSLETTER_FIELDS)
        context = await run_in_threadpool(_context, request, "", draft, None)
        context["values"]["name"] = fields["name"]
        fresh(context)
        return views.render(
            request, "newsletter.html", context, session=session, section="newsletters"
        )
    fields = await auth.verified_form(request, session)
    name = fields.get("name", "").strip()
    path = _path(settings, name)
    problem = None
    if not SLUG.match(name):
        problem = (
            "Give the newsletter a file name: letters, digits and '-', e.g. 2026-12-08-winter-note."
        )
    elif path.exists():
        problem = f"There is already a newsletter called {name}."
    draft = drafts.from_fields(path, fields, drafts.NEWSLETTER_FIELDS)
    if problem:
        context = await run_in_threadpool(_context, request, "", draft, problem)
        context["values"]["name"] = name
        return views.render(
            request, "newsletter.html", context, session=session, status=422, section="newsletters"
        )
    return await _save(request, session, name, draft, "")


async def _save(
    request: Request, session: Session, slug: str, draft: drafts.Draft, base: str | None
) -> Response:
    services = views.services_of(request)
    catalogue = services.catalogue
    if slug in catalogue.newsletters:
        with database.reading(services.engine) as conn:
            if audience.newsletter_progress(conn, NEWSLETTERS, slug):
                return error_response(request, 409, "This newsletter has started going out.")
    try:
        await run_in_threadpool(
            publishing.publish, services.settings, [draft.change(base)], now=services.clock()
        )
    except (publishing.Rejected, publishing.Conflict) as exc:
        context = await run_in_threadpool(_context, request, slug if base else "", draft, None)
        context["refused"] = exc.message
        context["values"]["name"] = slug
        status = 409 if isinstance(exc, publishing.Conflict) else 422
        return views.render(
            request,
            "newsletter.html",
            context,
            session=session,
            status=status,
            section="campaigns" if base else "newsletters",
        )
    await run_in_threadpool(reload.refresh, services)
    return RedirectResponse(f"/studio/newsletters/{slug}?done=saved", 303)


def _context(
    request: Request, slug: str, draft: drafts.Draft, name_problem: str | None
) -> dict[str, Any]:
    """The newsletter page: fields, preview, problems, reach and standing."""
    services = views.services_of(request)
    settings = services.settings
    name = slug or draft.path.stem
    view = drafts.preview(settings, NEWSLETTERS, name, draft, extra=[])
    line = drafts.body_line(draft)
    letter = view_catalogue_letter(request, slug)
    standing: dict[str, Any] = {"state": "new", "sent": 0, "editable": True}
    reach = None
    with database.reading(services.engine) as conn:
        if letter is not None:
            standing = _standing(
                letter, audience.newsletters_started(conn, NEWSLETTERS), services.clock()
            )
        at = letter.send_at if letter else services.clock()
        reach = planning_ops.audience_size(conn, send_at=max(at, services.clock()))
    root = Path(settings.campaigns_dir)
    return {
        "slug": slug,
        "letter": letter,
        "values": {**draft.values, "name": name},
        "body": draft.body,
        "base": publishing.digest(draft.previous) if slug else "",
        "preview": view,
        "problems": [drafts.problem_json(p, line) for p in view.problems],
        "name_problem": name_problem,
        "reach": reach,
        "standing": standing,
        "zone": settings.timezone,
        "versions": len(history.versions(root, draft.path)) if slug else 0,
        "test_recipient": settings.test_recipient or "",
        "action": f"/studio/newsletters/{slug}" if slug else "/studio/newsletters/new",
    }


def view_catalogue_letter(request: Request, slug: str) -> Newsletter | None:
    """The newsletter as the files say now (``None``: new, or it does not read)."""
    if not slug:
        return None
    found = views.files(views.settings_of(request))
    return found.catalogue.newsletters.get(slug)


@auth.login_required
async def letter_preview(request: Request, session: Session) -> Response:
    """``POST /studio/newsletters/{slug}/preview``: the preview as JSON (``new`` for a new one)."""
    settings = views.settings_of(request)
    slug = request.path_params["slug"]
    fields = await auth.verified_form(request, session)
    name = fields.get("name", "").strip() if slug == "new" else slug
    if not SLUG.match(name):
        return JSONResponse({"error": "Give the newsletter a file name first.", "problems": []})
    draft = drafts.from_fields(_path(settings, name), fields, drafts.NEWSLETTER_FIELDS)
    view = await run_in_threadpool(drafts.preview, settings, NEWSLETTERS, name, draft, extra=[])
    return JSONResponse(view.as_json(drafts.body_line(draft)), headers=views.HEADERS)


@auth.login_required
async def cancel(request: Request, session: Session) -> Response:
    """``GET …/cancel``: what cancelling means; ``POST``: cancel (the file goes to history)."""
    services = views.services_of(request)
    settings = services.settings
    slug = request.path_params["slug"]
    path = _path(settings, slug)
    if not SLUG.match(slug) or not path.is_file():
        return error_response(request, 404)
    letter = await run_in_threadpool(view_catalogue_letter, request, slug)
    with database.reading(services.engine) as conn:
        progress = audience.newsletter_progress(conn, NEWSLETTERS, slug)
    if request.method == "GET":
        context = {
            "slug": slug,
            "letter": letter,
            "progress": progress,
            "base": publishing.digest(publishing.current_text(path)),
        }
        return views.render(request, "cancel.html", context, session=session, section="campaigns")
    fields = await auth.verified_form(request, session)
    change = publishing.Change(path, None, fields.get("base"))
    try:
        await run_in_threadpool(publishing.publish, settings, [change], now=services.clock())
    except (publishing.Rejected, publishing.Conflict) as exc:
        return error_response(request, 409, exc.message)
    await run_in_threadpool(reload.refresh, services)
    return RedirectResponse("/studio/campaigns?done=cancelled#newsletters", 303)
