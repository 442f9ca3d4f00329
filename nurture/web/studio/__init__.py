"""The therapist's studio under ``/studio``: write, check, preview and publish.

Modules: :mod:`.auth` (login, session, CSRF: reuse it for every studio page),
:mod:`.login` (the login page and the front page), :mod:`.editor` (the list and a
step's editor with live preview), :mod:`.steps` (add, reorder, remove), :mod:`.newsletters`,
:mod:`.versions` (history and restore), :mod:`.trying` (test sends), :mod:`.drafts` and
:mod:`.views` (shared helpers), :mod:`.snippets` (shared blocks and where they are used),
:mod:`.new_campaign` (a sequence drafted from an article, and its sign-up form) and
:mod:`.subscribers` (one subscriber by exact address: show, unsubscribe, erase). Pages
live in ``templates/web/studio/``; the studio's own stylesheet and script are served
from ``templates/web/studio/static/``.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from nurture.web.errors import error_response
from nurture.web.studio import (
    auth,
    editor,
    login,
    new_campaign,
    newsletters,
    snippets,
    steps,
    subscribers,
    trying,
    versions,
    views,
)

STATIC = {"studio.css": "text/css", "studio.js": "text/javascript"}


async def static(request: Request) -> Response:
    """``GET /studio/static/{name}``: the studio's stylesheet and script (no login: no data)."""
    name = request.path_params["name"]
    if name not in STATIC or not auth.available(request):
        return error_response(request, 404)
    folder = Path(views.settings_of(request).templates_dir) / "web" / "studio" / "static"
    return FileResponse(
        folder / name, media_type=STATIC[name], headers={"Cache-Control": "no-cache"}
    )


def routes() -> list[BaseRoute]:
    """Every studio route but the dashboard's (``/studio/``, :mod:`.dashboard`)."""
    campaign_step = "/studio/campaigns/{campaign}/{step}"
    letter = "/studio/newsletters/{slug}"
    get, post, both = ["GET"], ["POST"], ["GET", "POST"]
    return [
        Route("/studio", login.studio_root, methods=get),
        Route("/studio/login", login.login, methods=both, name="studio_login"),
        Route("/studio/logout", login.logout, methods=post, name="studio_logout"),
        Route("/studio/static/{name}", static, methods=get, name="studio_static"),
        Route("/studio/campaigns", editor.campaigns, methods=get, name="studio_campaigns"),
        Route("/studio/campaigns/new", new_campaign.new, methods=both),
        Route("/studio/signup-form/{campaign}", new_campaign.signup_form, methods=get),
        Route("/studio/snippets", snippets.index, methods=get, name="studio_snippets"),
        Route("/studio/snippets/{name}", snippets.page, methods=both),
        Route("/studio/snippets/{name}/history", versions.versions, methods=get),
        Route("/studio/snippets/{name}/history/{version}", versions.version, methods=both),
        Route("/studio/subscribers", subscribers.lookup, methods=both),
        Route("/studio/subscribers/unsubscribe", subscribers.unsubscribe, methods=post),
        Route("/studio/subscribers/erase", subscribers.erase, methods=post),
        Route("/studio/newsletters/new", newsletters.new_letter, methods=both),
        Route("/studio/newsletters/new/preview", newsletters.letter_preview, methods=post),
        Route(letter, newsletters.letter_page, methods=both, name="studio_newsletter"),
        Route(letter + "/preview", newsletters.letter_preview, methods=post),
        Route(letter + "/cancel", newsletters.cancel, methods=both),
        Route(letter + "/test", trying.send, methods=post),
        Route(letter + "/history", versions.versions, methods=get),
        Route(letter + "/history/{version}", versions.version, methods=both),
        Route("/studio/campaigns/{campaign}/steps", steps.arrange, methods=get),
        Route("/studio/campaigns/{campaign}/steps", steps.confirm, methods=post),
        Route("/studio/campaigns/{campaign}/steps/review", steps.review, methods=post),
        Route("/studio/campaigns/{campaign}/new", steps.new_step, methods=both),
        Route("/studio/campaigns/{campaign}/new/preview", steps.new_preview, methods=post),
        Route(campaign_step, editor.step_page, methods=both, name="studio_step"),
        Route(campaign_step + "/preview", editor.step_preview, methods=post),
        Route(campaign_step + "/test", trying.send, methods=post),
        Route(campaign_step + "/history", versions.versions, methods=get),
        Route(campaign_step + "/history/{version}", versions.version, methods=both),
    ]
