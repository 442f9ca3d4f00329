"""The editor: every sequence with its steps, and one email's page with a live preview.

``GET /studio/campaigns`` lists the sequences (steps in order, with subject, delay and
roughly when each goes out) and the newsletters. ``GET /studio/campaigns/{slug}/{step}``
is a step's page: subject, preheader, delay and the Markdown body beside the preview
(desktop 600 px, phone 375 px, the plain-text part and a lock screen), with ``check``'s
problems next to the field or body line they are about. ``POST`` the same address
saves: the exact validation of ``nurture check`` (422 and nothing written on an error),
then an atomic rewrite that keeps the previous version in the history, and the running
service reloads at once. ``POST …/preview`` answers the preview as JSON, for the page's
script, as she types.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from nurture.campaigns import days, history, publishing
from nurture.campaigns.model import Campaign, Catalogue
from nurture.runtime import reload
from nurture.web.errors import error_response
from nurture.web.studio import auth, drafts, newsletters, snippets, views
from nurture.web.studio.auth import Session

SLUG = views.SLUG
NOTICES = {
    "saved": "Saved. Readers get this version from the next email that goes out.",
    "restored": "The earlier version is back in place.",
    "arranged": "The steps are saved in their new order.",
    "added": "The new email is saved and is now part of the sequence.",
}


@auth.login_required
async def campaigns(request: Request, session: Session) -> Response:
    """``GET /studio/campaigns``: sequences with their steps, and the newsletters."""
    settings = views.settings_of(request)
    found = await run_in_threadpool(views.files, settings)
    rows = []
    for campaign in found.catalogue.campaigns.values():
        outline = campaign.outline()
        published = [s for s in outline if not s.draft]
        slugs = [s.slug for s in published]
        day_of = dict(zip(slugs, views.day_of([s.delay for s in published]), strict=True))
        steps = [
            {
                "step": step,
                "number": number,
                "delay": views.delay_words(step.delay) if number > 1 else "on confirming",
                "day": day_of.get(step.slug, "draft"),
                "problems": found.problems_in(step.path),
                "days": None if step.send_days is None else days.describe(step.send_days),
            }
            for number, step in enumerate(outline, 1)
        ]
        rows.append(
            {
                "campaign": campaign,
                "steps": steps,
                "problems": found.problems_in(campaign.path),
                "behaviour": behaviour(campaign),
            }
        )
    context = {
        "campaigns": rows,
        "snippets": snippets.overview(found.catalogue),
        "newsletters": await run_in_threadpool(newsletters.overview, request, found.catalogue),
        "problems": found.problems,
        "errors": found.errors,
    }
    return views.render(request, "campaigns.html", context, session=session, section="campaigns")


def behaviour(campaign: Campaign) -> list[str]:
    """How a sequence behaves, in plain words: evergreen or not, send days, stops."""
    said = [
        "Evergreen: readers who finish get emails you add later."
        if campaign.hold
        else "Readers who finish are done; emails you add later reach only readers "
        "who haven't finished.",
        _send_days(campaign),
    ]
    if "booked" in campaign.stop_when:
        said.append("Stops when the reader books.")
    if campaign.drafts:
        count = len(campaign.drafts)
        said.append(
            f"{count} draft{'s' if count != 1 else ''}: never sent until you publish "
            f"{'them' if count != 1 else 'it'}."
        )
    return said


def _send_days(campaign: Campaign) -> str:
    named = days.describe(campaign.send_days)
    if named == "every day":
        return "Goes out any day of the week, inside each reader's send window."
    return f"Goes out on {named} only, in each reader's own time zone."


def locate(catalogue: Catalogue, slug: str, step: str) -> tuple[Campaign, Path] | None:
    """The campaign and the file of one of its steps, or ``None`` when there is no such step."""
    if not SLUG.match(slug) or not SLUG.match(step):
        return None
    campaign = catalogue.campaigns.get(slug)
    if campaign is None or step not in {s.slug for s in campaign.outline()}:
        return None
    return campaign, campaign.path.parent / f"{step}.md"


@auth.login_required
async def step_page(request: Request, session: Session) -> Response:
    """``GET`` a step's editor; ``POST`` saves it."""
    settings = views.settings_of(request)
    slug, step = request.path_params["campaign"], request.path_params["step"]
    found = await run_in_threadpool(views.files, settings)
    where = locate(found.catalogue, slug, step)
    if where is None:
        return error_response(request, 404)
    campaign, path = where
    if request.method == "GET":
        draft, _ = drafts.from_file(path, drafts.STEP_FIELDS)
        notice = NOTICES.get(request.query_params.get("done", ""))
        context = await run_in_threadpool(editor_context, request, campaign, step, draft)
        return views.render(
            request,
            "step.html",
            {**context, "notice": notice},
            session=session,
            section="campaigns",
        )
    fields = await auth.verified_form(request, session)
    draft = drafts.from_fields(path, fields, drafts.STEP_FIELDS)
    if fields.get("publish") == "yes":
        # Publishing removes the file's ``draft: true`` line, through the same check as
        # any save: a step still holding the scaffold's notes is refused (422).
        draft = dataclasses.replace(draft, values={**draft.values, "draft": ""})
    services = views.services_of(request)
    try:
        await run_in_threadpool(
            publishing.publish, settings, [draft.change(fields.get("base"))], now=services.clock()
        )
    except (publishing.Rejected, publishing.Conflict) as exc:
        context = await run_in_threadpool(editor_context, request, campaign, step, draft)
        context["refused"] = exc.message
        if isinstance(exc, publishing.Conflict):
            context["base"] = fields.get("base", "")
        return views.render(
            request,
            "step.html",
            context,
            session=session,
            status=409 if isinstance(exc, publishing.Conflict) else 422,
            section="campaigns",
        )
    await run_in_threadpool(reload.refresh, services)
    return RedirectResponse(f"/studio/campaigns/{slug}/{step}?done=saved", 303)


def editor_context(
    request: Request, campaign: Campaign, step: str, draft: drafts.Draft
) -> dict[str, Any]:
    """Everything the step page shows: fields, preview, problems, position, history."""
    settings = views.settings_of(request)
    view = drafts.preview(settings, campaign.slug, step, draft, extra=[])
    line = drafts.body_line(draft)
    outline = [s.slug for s in campaign.outline()]
    index = outline.index(step)
    root = Path(settings.campaigns_dir)
    return {
        "campaign": campaign,
        "step": step,
        "number": index + 1,
        "count": len(outline),
        "first": index == 0,
        "draft": step in {s.slug for s in campaign.drafts},
        "previous": outline[index - 1] if index > 0 else None,
        "next": outline[index + 1] if index + 1 < len(outline) else None,
        "values": draft.values,
        "body": draft.body,
        "base": publishing.digest(draft.previous),
        "preview": view,
        "problems": [drafts.problem_json(p, line) for p in view.problems],
        "versions": len(history.versions(root, draft.path)),
        "test_recipient": settings.test_recipient or "",
        "action": f"/studio/campaigns/{campaign.slug}/{step}",
    }


@auth.login_required
async def step_preview(request: Request, session: Session) -> Response:
    """``POST …/preview``: the preview of the posted fields as JSON (nothing is written)."""
    settings = views.settings_of(request)
    slug, step = request.path_params["campaign"], request.path_params["step"]
    fields = await auth.verified_form(request, session)
    found = await run_in_threadpool(views.files, settings)
    where = locate(found.catalogue, slug, step)
    if where is None:
        return error_response(request, 404)
    draft = drafts.from_fields(where[1], fields, drafts.STEP_FIELDS)
    view = await run_in_threadpool(drafts.preview, settings, slug, step, draft, extra=[])
    return JSONResponse(view.as_json(drafts.body_line(draft)), headers=views.HEADERS)
