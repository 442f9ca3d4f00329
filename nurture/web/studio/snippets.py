"""Snippets in the studio: every shared block, where each is used, and its editor.

``GET /studio/snippets`` lists ``campaigns/snippets/*.md`` with the emails and
newsletters that use each (``{{ snippet.NAME }}``, found by
:func:`nurture.campaigns.snippets.names_used`). ``GET /studio/snippets/{name}`` edits
one; ``POST`` saves it like a step: exactly ``nurture check`` (an error in the snippet,
or in an email it now breaks, answers 422 and writes nothing), then an atomic rewrite
that keeps the replaced version (``…/history``, :mod:`.versions`), and the running
service reloads at once. Every email using it changes from its next send.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from nurture.campaigns import history, publishing
from nurture.campaigns.model import Catalogue
from nurture.campaigns.snippets import SNIPPETS, names_used
from nurture.campaigns.writer import normalise_body
from nurture.runtime import reload
from nurture.web.errors import error_response
from nurture.web.studio import auth, views
from nurture.web.studio.auth import Session

#: A snippet's name as ``{{ snippet.NAME }}`` spells it.
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")


@dataclass(frozen=True)
class Use:
    """One email or newsletter that uses a snippet: what to call it, where to edit it."""

    label: str
    href: str
    file: str


def where_used(catalogue: Catalogue) -> dict[str, list[Use]]:
    """Snippet name -> every step (drafts too) and newsletter whose body names it."""
    found: dict[str, list[Use]] = {}
    for campaign in catalogue.campaigns.values():
        for number, step in enumerate(campaign.outline(), 1):
            label = f"{campaign.name}, email {number}: {step.subject or step.slug}"
            use = Use(label, f"/studio/campaigns/{campaign.slug}/{step.slug}", _file(step.path))
            for name in names_used(step.body):
                found.setdefault(name, []).append(use)
    for letter in catalogue.newsletters.values():
        use = Use(
            f"Newsletter: {letter.subject}",
            f"/studio/newsletters/{letter.slug}",
            _file(letter.path),
        )
        for name in names_used(letter.body):
            found.setdefault(name, []).append(use)
    return found


def _file(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def overview(catalogue: Catalogue) -> list[dict[str, Any]]:
    """Each snippet with its uses, by name (for the list and the campaigns page)."""
    uses = where_used(catalogue)
    return [
        {"name": name, "snippet": snippet, "uses": uses.get(name, [])}
        for name, snippet in sorted(catalogue.snippets.items())
    ]


@auth.login_required
async def index(request: Request, session: Session) -> Response:
    """``GET /studio/snippets``: every snippet and where it is used."""
    found = await run_in_threadpool(views.files, views.settings_of(request))
    context = {
        "snippets": overview(found.catalogue),
        "errors": [p for p in found.errors if f"/{SNIPPETS}/" in p.path],
    }
    return views.render(request, "snippets.html", context, session=session, section="snippets")


def snippet_path(request: Request) -> Path | None:
    """The file of the snippet the address names, or ``None`` when there is none."""
    name = request.path_params["name"]
    path = Path(views.settings_of(request).campaigns_dir) / SNIPPETS / f"{name}.md"
    return path if NAME.match(name) and path.is_file() else None


@auth.login_required
async def page(request: Request, session: Session) -> Response:
    """``GET`` a snippet's editor; ``POST`` saves it (422 and nothing written on an error)."""
    path = snippet_path(request)
    if path is None:
        return error_response(request, 404)
    services = views.services_of(request)
    if request.method == "GET":
        body = publishing.current_text(path) or ""
        context = await run_in_threadpool(_context, request, path, body)
        context["notice"] = _NOTICES.get(request.query_params.get("done", ""))
        return views.render(request, "snippet.html", context, session=session, section="snippets")
    fields = await auth.verified_form(request, session)
    body = normalise_body(fields.get("body", ""))
    change = publishing.Change(path, body, fields.get("base"))
    try:
        await run_in_threadpool(
            publishing.publish, services.settings, [change], now=services.clock()
        )
    except (publishing.Rejected, publishing.Conflict) as exc:
        context = await run_in_threadpool(_context, request, path, body)
        context["refused"] = exc.message
        if isinstance(exc, publishing.Rejected):
            context["blocking"] = [_problem(p, path) for p in exc.review.blocking]
        else:
            context["base"] = fields.get("base", "")
        status = 422 if isinstance(exc, publishing.Rejected) else 409
        return views.render(
            request, "snippet.html", context, session=session, status=status, section="snippets"
        )
    await run_in_threadpool(reload.refresh, services)
    return RedirectResponse(f"/studio/snippets/{path.stem}?done=saved", 303)


_NOTICES = {
    "saved": "Saved. Every email using this snippet gets the new text from its next send.",
    "restored": "The earlier version is back in place.",
}


def _context(request: Request, path: Path, body: str) -> dict[str, Any]:
    settings = views.settings_of(request)
    found = views.files(settings)
    root = Path(settings.campaigns_dir)
    return {
        "name": path.stem,
        "body": body,
        "base": publishing.digest(publishing.current_text(path)),
        "uses": where_used(found.catalogue).get(path.stem, []),
        "problems": [_problem(p, path) for p in found.problems_in(path)],
        "blocking": [],
        "versions": len(history.versions(root, path)),
        "action": f"/studio/snippets/{path.stem}",
    }


def _problem(problem: Any, path: Path) -> dict[str, Any]:
    """A problem for the page: in this snippet (its line), or in a file using it."""
    mine = problem.path == str(path)
    return {
        "where": f"Line {problem.line}" if mine else f"{_file(Path(problem.path))}:{problem.line}",
        "message": problem.message,
        "severity": problem.severity,
    }
