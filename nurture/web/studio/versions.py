"""Earlier versions of an email: list them, read one beside today's, put one back.

``GET …/history`` lists the versions the studio kept (newest first);
``GET …/history/{version}`` shows one, with what differs from the file today;
``POST …/history/{version}`` restores it, held to the same check as a save (an old
version that no longer passes, say because a variable was renamed since, is refused
with 422 and nothing changes). Restoring keeps the version it replaces, so it can be
undone the same way. Works for sequence steps (``/studio/campaigns/{slug}/{step}``)
newsletters (``/studio/newsletters/{slug}``) and snippets (``/studio/snippets/{name}``).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from nurture.campaigns import NEWSLETTERS, history, publishing
from nurture.exceptions import CampaignError
from nurture.runtime import reload
from nurture.web.errors import error_response
from nurture.web.studio import auth, snippets, views
from nurture.web.studio.auth import Session
from nurture.web.studio.editor import SLUG, locate


def _target(request: Request) -> tuple[Path, str, str] | None:
    """(the file, the editor's address, a label) for the request's path, or ``None``."""
    settings = views.settings_of(request)
    params = request.path_params
    if "name" in params:
        path = snippets.snippet_path(request)
        if path is None:
            return None
        return path, f"/studio/snippets/{path.stem}", f"snippet {path.stem}"
    if "slug" in params:
        slug = params["slug"]
        path = Path(settings.campaigns_dir) / NEWSLETTERS / f"{slug}.md"
        if not SLUG.match(slug) or not path.is_file():
            return None
        return path, f"/studio/newsletters/{slug}", f"newsletter {slug}"
    found = views.files(settings)
    where = locate(found.catalogue, params["campaign"], params["step"])
    if where is None:
        return None
    campaign, path = where
    return path, f"/studio/campaigns/{campaign.slug}/{path.stem}", f"{campaign.name}: {path.stem}"


@auth.login_required
async def versions(request: Request, session: Session) -> Response:
    """``GET …/history``: every kept version of the email, newest first."""
    target = await run_in_threadpool(_target, request)
    if target is None:
        return error_response(request, 404)
    path, editor, label = target
    root = Path(views.settings_of(request).campaigns_dir)
    kept = await run_in_threadpool(history.versions, root, path)
    context = {"versions": kept, "editor": editor, "label": label}
    return views.render(request, "history.html", context, session=session)


@auth.login_required
async def version(request: Request, session: Session) -> Response:
    """``GET`` one version beside today's text; ``POST`` restores it."""
    target = await run_in_threadpool(_target, request)
    if target is None:
        return error_response(request, 404)
    path, editor, label = target
    services = views.services_of(request)
    root = Path(services.settings.campaigns_dir)
    try:
        kept = history.version(root, path, request.path_params["version"])
    except CampaignError:
        return error_response(request, 404)
    old, now = kept.text(), publishing.current_text(path) or ""
    context: dict[str, Any] = {
        "version": kept,
        "editor": editor,
        "label": label,
        "text": old,
        "diff": _diff(now, old),
        "base": publishing.digest(now),
    }
    if request.method == "GET":
        return views.render(request, "version.html", context, session=session)
    fields = await auth.verified_form(request, session)
    change = publishing.Change(path, old, fields.get("base"))
    try:
        await run_in_threadpool(
            publishing.publish, services.settings, [change], now=services.clock()
        )
    except (publishing.Rejected, publishing.Conflict) as exc:
        context["refused"] = exc.message
        context["blocking"] = exc.review.blocking if isinstance(exc, publishing.Rejected) else []
        status = 422 if isinstance(exc, publishing.Rejected) else 409
        return views.render(request, "version.html", context, session=session, status=status)
    await run_in_threadpool(reload.refresh, services)
    return RedirectResponse(f"{editor}?done=restored", 303)


def _diff(today: str, old: str) -> list[tuple[str, str]]:
    """Lines of the change from today's text back to ``old``: ("-"/"+"/" ", line)."""
    lines = []
    for line in difflib.unified_diff(today.splitlines(), old.splitlines(), lineterm="", n=2):
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            lines.append(("@", "…"))
            continue
        lines.append((line[:1] or " ", line[1:]))
    return lines
