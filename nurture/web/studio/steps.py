"""Adding, reordering and removing a sequence's steps, with the effect on its readers
stated before anything is saved.

``GET /studio/campaigns/{slug}/steps`` shows the order with move and remove buttons;
each posts the proposed order to ``…/steps/review``, a page that says what happens to
the readers already in the sequence (:mod:`nurture.campaigns.arrangement`) and asks
for confirmation, which posts to ``…/steps``. A new email is written on
``…/new`` like any step (with the live preview), then reviewed the same way.
A removed step's file goes to the history, so it can be restored.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from nurture.campaigns import arrangement, publishing
from nurture.campaigns.model import Campaign
from nurture.campaigns.writer import with_steps
from nurture.runtime import reload
from nurture.store import audience, database
from nurture.web.errors import error_response
from nurture.web.studio import auth, drafts, newsletters, views
from nurture.web.studio.auth import Session
from nurture.web.studio.views import SLUG

NEW_BODY = "Hello {{ first_name }},\n\n\n\n{{ therapist_name }}\n"


def _campaign(request: Request) -> Campaign | None:
    slug = request.path_params["campaign"]
    if not SLUG.match(slug):
        return None
    found = views.files(views.settings_of(request))
    return found.catalogue.campaigns.get(slug)


@auth.login_required
async def arrange(request: Request, session: Session) -> Response:
    """``GET …/steps``: the order, with buttons that propose a change."""
    campaign = await run_in_threadpool(_campaign, request)
    if campaign is None:
        return error_response(request, 404)
    order = [s.slug for s in campaign.outline()]
    proposals = []
    for index, step in enumerate(campaign.outline()):
        up = _swap(order, index, index - 1) if index > 0 else None
        down = _swap(order, index, index + 1) if index + 1 < len(order) else None
        rest = [s for s in order if s != step.slug]
        proposals.append({"step": step, "up": up, "down": down, "remove": ",".join(rest)})
    context = {"campaign": campaign, "proposals": proposals}
    return views.render(request, "arrange.html", context, session=session, section="campaigns")


def _swap(order: list[str], a: int, b: int) -> str:
    changed = list(order)
    changed[a], changed[b] = changed[b], changed[a]
    return ",".join(changed)


async def _proposed(
    request: Request, session: Session
) -> Response | tuple[dict[str, str], Campaign, list[str]]:
    """The posted form, its sequence and the order it proposes, or the answer to give
    instead (403 without a valid form token, 404, 400 for an order that does not fit)."""
    fields = await auth.verified_form(request, session)
    campaign = await run_in_threadpool(_campaign, request)
    if campaign is None:
        return error_response(request, 404)
    order = _order(fields.get("order", ""), campaign)
    if order is None:
        return error_response(request, 400, "That order does not match this sequence's steps.")
    return fields, campaign, order


@auth.login_required
async def review(request: Request, session: Session) -> Response:
    """``POST …/steps/review``: what the proposed order does to readers; a Confirm button."""
    proposed = await _proposed(request, session)
    if isinstance(proposed, Response):
        return proposed
    _, campaign, order = proposed
    context = await run_in_threadpool(_review_context, request, campaign, order, None)
    return views.render(request, "review.html", context, session=session, section="campaigns")


@auth.login_required
async def confirm(request: Request, session: Session) -> Response:
    """``POST …/steps``: saves the confirmed order (removed steps' files go to the history)."""
    proposed = await _proposed(request, session)
    if isinstance(proposed, Response):
        return proposed
    fields, campaign, order = proposed
    changes = _arrangement_changes(campaign, order, fields.get("base"))
    return await _publish(request, session, campaign, changes, order, None, "arranged")


def _order(raw: str, campaign: Campaign, *, adding: str | None = None) -> list[str] | None:
    """The posted order, when it is this campaign's steps (less removed ones, plus ``adding``)."""
    order = [s for s in raw.split(",") if s]
    known = {s.slug for s in campaign.outline()} | ({adding} if adding else set())
    if not order or len(set(order)) != len(order) or not set(order) <= known:
        return None
    if adding and adding not in order:
        return None
    return order


def _arrangement_changes(
    campaign: Campaign, order: list[str], base: str | None
) -> list[publishing.Change]:
    yaml_text = publishing.current_text(campaign.path) or ""
    changes = [publishing.Change(campaign.path, with_steps(yaml_text, order), base)]
    for step in campaign.outline():
        if step.slug not in order:
            changes.append(publishing.Change(campaign.path.parent / f"{step.slug}.md", None))
    return changes


def _review_context(
    request: Request, campaign: Campaign, order: list[str], new: dict[str, str] | None
) -> dict[str, Any]:
    """The review page: old and new order, the check's verdict, and each group's effect."""
    services = views.services_of(request)
    drafts_ = {s.slug for s in campaign.drafts}
    old = [s.slug for s in campaign.steps]
    sendable = [s for s in order if s not in drafts_ and not (new and new.get("draft"))]
    with database.reading(services.engine) as conn:
        positions = audience.positions(conn, campaign.slug)
        waiting = audience.waiting_steps(conn, campaign.slug)
    subjects = {s.slug: s.subject for s in campaign.outline()}
    if new:
        subjects[new["name"]] = new.get("subject", "")
    return {
        "campaign": campaign,
        "order": order,
        "order_text": ",".join(order),
        "old_order": [s.slug for s in campaign.outline()],
        "subjects": subjects,
        "summary": arrangement.summary(old, sendable),
        "effects": [
            _describe(e, subjects) for e in arrangement.effects(old, sendable, positions, waiting)
        ],
        "readers": sum(positions.values()),
        "base": publishing.digest(publishing.current_text(campaign.path)),
        "new": new,
        "blocking": [],
    }


def _describe(effect: arrangement.Effect, subjects: dict[str, str]) -> dict[str, str | None]:
    """One group's effect in words: who, what they get next, what they will never get."""

    def quoted(slug: str) -> str:
        return f"“{subjects.get(slug, slug) or slug}”"

    many = effect.readers != 1
    who = f"{effect.readers} reader{'s' if many else ''} who {'have' if many else 'has'} had "
    who += f"{effect.had} email{'s' if effect.had != 1 else ''}:"
    parts = []
    if effect.cancelled:
        parts.append(f"the queued {quoted(effect.cancelled)} is cancelled")
    if effect.queued:
        parts.append(f"{quoted(effect.queued)} is already queued and still goes out")
    if effect.upcoming:
        rest = len(effect.upcoming) - 1
        then = f", then {rest} more" if rest else ""
        parts.append(f"{'then ' if effect.queued else ''}{quoted(effect.upcoming[0])} next{then}")
    elif not effect.queued:
        parts.append("no more emails from this sequence")
    text = "; ".join(parts)
    text = text[:1].upper() + text[1:] + "."
    warning = None
    if effect.missed:
        names = ", ".join(quoted(s) for s in effect.missed)
        warning = f"They will not get {names}: it comes before where they are."
    return {"who": who, "text": text, "warning": warning}


async def _publish(
    request: Request,
    session: Session,
    campaign: Campaign,
    changes: list[publishing.Change],
    order: list[str],
    new: dict[str, str] | None,
    done: str,
) -> Response:
    services = views.services_of(request)
    try:
        await run_in_threadpool(
            publishing.publish, services.settings, changes, now=services.clock()
        )
    except (publishing.Rejected, publishing.Conflict) as exc:
        context = await run_in_threadpool(_review_context, request, campaign, order, new)
        context["refused"] = exc.message
        if isinstance(exc, publishing.Rejected):
            context["blocking"] = exc.review.blocking
        status = 422 if isinstance(exc, publishing.Rejected) else 409
        return views.render(
            request, "review.html", context, session=session, status=status, section="campaigns"
        )
    await run_in_threadpool(reload.refresh, services)
    target = new["name"] if new else (order[0] if order else "")
    if not target:
        return RedirectResponse("/studio/campaigns", 303)
    return RedirectResponse(f"/studio/campaigns/{campaign.slug}/{target}?done={done}", 303)


# -- a new step ---------------------------------------------------------------------------


def _new_draft(campaign: Campaign, fields: dict[str, str]) -> tuple[drafts.Draft, list[str]]:
    name = fields.get("name", "").strip()
    path = campaign.path.parent / f"{name}.md"
    draft = drafts.from_fields(path, fields, drafts.STEP_FIELDS)
    order = [s.slug for s in campaign.outline()]
    try:
        position = max(0, min(int(fields.get("position", len(order))), len(order)))
    except ValueError:
        position = len(order)
    return draft, [*order[:position], name, *order[position:]]


def _name_problem(campaign: Campaign, name: str) -> str | None:
    if not SLUG.match(name):
        return "Give the email a file name: letters, digits and '-', e.g. 11-a-new-note."
    if (
        name in {s.slug for s in campaign.outline()}
        or (campaign.path.parent / f"{name}.md").exists()
    ):
        return f"There is already an email called {name}."
    return None


@auth.login_required
async def new_step(request: Request, session: Session) -> Response:
    """``GET …/new``: an empty editor; ``POST``: review (``confirm=yes``: save)."""
    campaign = await run_in_threadpool(_campaign, request)
    if campaign is None:
        return error_response(request, 404)
    count = len(campaign.outline())
    if request.method == "GET":
        fields = {"position": request.query_params.get("position", str(count)), "body": NEW_BODY}
        fields.update(delay="2 days" if count else "0", name=f"{count + 1:02d}-")
        context = await run_in_threadpool(_new_context, request, campaign, fields, None)
        newsletters.fresh(context)
        return views.render(request, "new_step.html", context, session=session, section="campaigns")
    fields = await auth.verified_form(request, session)
    problem = _name_problem(campaign, fields.get("name", "").strip())
    draft, order = _new_draft(campaign, fields)
    if problem is None:
        yaml_change = _arrangement_changes(campaign, order, fields.get("base"))[0]
        result = await run_in_threadpool(
            publishing.review, views.settings_of(request), [draft.change(""), yaml_change]
        )
        if result.ok and fields.get("confirm") == "yes":
            new = {**draft.values, "name": draft.path.stem}
            changes = [draft.change(""), yaml_change]
            return await _publish(request, session, campaign, changes, order, new, "added")
        if result.ok:
            new = {**draft.values, "name": draft.path.stem, "body": draft.body}
            new["position"] = fields.get("position", "")
            context = await run_in_threadpool(_review_context, request, campaign, order, new)
            return views.render(
                request, "review.html", context, session=session, section="campaigns"
            )
    context = await run_in_threadpool(_new_context, request, campaign, fields, problem)
    return views.render(
        request, "new_step.html", context, session=session, status=422, section="campaigns"
    )


def _new_context(
    request: Request, campaign: Campaign, fields: dict[str, str], name_problem: str | None
) -> dict[str, Any]:
    settings = views.settings_of(request)
    name = fields.get("name", "").strip()
    draft, order = _new_draft(campaign, fields)
    preview = None
    problems: list[dict[str, Any]] = []
    if SLUG.match(name) and not _name_problem(campaign, name):
        yaml_change = _arrangement_changes(campaign, order, None)[0]
        preview = drafts.preview(settings, campaign.slug, name, draft, extra=[yaml_change])
        line = drafts.body_line(draft)
        problems = [drafts.problem_json(p, line) for p in preview.problems]
    return {
        "campaign": campaign,
        "values": {**draft.values, "name": name, "position": fields.get("position", "")},
        "body": draft.body,
        "positions": [(i, s.slug) for i, s in enumerate(campaign.outline())],
        "count": len(campaign.outline()),
        "preview": preview,
        "problems": problems,
        "name_problem": name_problem,
        "base": publishing.digest(publishing.current_text(campaign.path)),
        "action": f"/studio/campaigns/{campaign.slug}/new",
    }


@auth.login_required
async def new_preview(request: Request, session: Session) -> Response:
    """``POST …/new/preview``: the new email's preview as JSON."""
    fields = await auth.verified_form(request, session)
    campaign = await run_in_threadpool(_campaign, request)
    if campaign is None:
        return error_response(request, 404)
    name = fields.get("name", "").strip()
    problem = _name_problem(campaign, name)
    if problem:
        return JSONResponse({"error": problem, "problems": []}, headers=views.HEADERS)
    context = await run_in_threadpool(_new_context, request, campaign, fields, None)
    preview = context["preview"]
    draft, _ = _new_draft(campaign, fields)
    return JSONResponse(preview.as_json(drafts.body_line(draft)), headers=views.HEADERS)
