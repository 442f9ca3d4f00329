"""A new sequence from an article, in the studio: what ``nurture new-campaign`` does.

``GET /studio/campaigns/new`` asks for the article's address, its title and its text
(pasted, or a ``.md``/``.txt`` file uploaded: the form is multipart, and a plain form
works too). ``POST`` with ``action=preview`` shows the proposed emails
(:func:`nurture.campaigns.scaffold.scaffold`: one per section, each a draft with its
key points quoted as notes); ``action=create`` checks the new folder exactly as
``nurture check`` would, writes it in one step (:func:`write_scaffold`), reloads the
service and goes to ``GET /studio/signup-form/{slug}``: the sign-up form to paste into
the article's page. An existing folder is never overwritten.
"""

from __future__ import annotations

import hmac
import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from nurture.campaigns import publishing
from nurture.campaigns.article import Format
from nurture.campaigns.scaffold import Scaffold, scaffold, write_scaffold
from nurture.exceptions import CampaignError
from nurture.runtime import reload
from nurture.web.errors import error_response
from nurture.web.forms import BodyTooLarge, read_body, replayed
from nurture.web.signup import signup_snippet
from nurture.web.studio import auth, views
from nurture.web.studio.auth import Session

#: The largest article accepted (a long article is some 60 KB of text).
MAX_ARTICLE = 400 * 1024
#: The largest request: the article, its file, and the form around them.
MAX_REQUEST = 2 * MAX_ARTICLE + 64 * 1024
SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text"}
FIELDS = ("url", "title", "slug", "article", "fmt")


class Refused(Exception):
    """What she must change before the article can be drafted (shown beside the form)."""


async def read_article_form(request: Request, session: Session) -> dict[str, str]:
    """The posted fields (multipart with an optional ``article_file``, or a plain form),
    CSRF checked; an uploaded file's text replaces ``article``. Raises
    :class:`auth.Forbidden` (bad token or body) or :class:`Refused` (a bad file)."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return await auth.verified_form(request, session)
    try:
        body = await read_body(request, MAX_REQUEST)
    except BodyTooLarge:
        raise auth.Forbidden from None
    try:
        form = await replayed(request, body).form(max_files=1, max_fields=20)
    except Exception:  # python-multipart and Starlette raise several types for bad input
        raise auth.Forbidden from None
    fields: dict[str, str] = {}
    upload: UploadFile | None = None
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            upload = value if name == "article_file" and value.filename else upload
        else:
            fields.setdefault(name, value)
    if not hmac.compare_digest(fields.get("csrf_token", "").encode(), session.csrf.encode()):
        raise auth.Forbidden
    if upload is not None:
        fields.update(_file_fields(upload.filename or "", await upload.read()))
    return fields


def _file_fields(filename: str, data: bytes) -> dict[str, str]:
    suffix = PurePosixPath(filename).suffix.lower()
    if suffix not in SUFFIXES:
        raise Refused("Upload the article as a .md or .txt file, or paste its text.")
    if len(data) > MAX_ARTICLE:
        raise Refused("That file is too long for an article.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Refused("That file is not plain text (UTF-8): paste the article instead.") from None
    return {"article": text, "fmt": SUFFIXES[suffix], "filename": PurePosixPath(filename).name}


def default_slug(url: str, title: str) -> str:
    """The folder's name when she gives none: the article address's last part, else
    the title, as lowercase words joined by ``-``."""
    path = urlsplit(url.strip()).path.rstrip("/")
    for source in (path.rsplit("/", 1)[-1], title):
        words = re.findall(r"[a-z0-9]+", source.lower().replace("'", "").replace("\u2019", ""))
        if words:
            return "-".join(words)[:60].strip("-")
    return ""


def draft_from(request: Request, fields: dict[str, str]) -> Scaffold:
    """The scaffold the fields describe; raises :class:`Refused` with what to change."""
    settings = views.settings_of(request)
    url, title = fields.get("url", "").strip(), " ".join(fields.get("title", "").split())
    article = fields.get("article", "").replace("\r\n", "\n")
    if not url or not title or not article.strip():
        raise Refused("Give the article's address, its title and its text.")
    if len(article) > MAX_ARTICLE:
        raise Refused("That article is too long.")
    slug = fields.get("slug", "").strip() or default_slug(url, title)
    fmt: Format = "markdown" if fields.get("fmt") == "markdown" else "auto"
    fmt = "text" if fields.get("fmt") == "text" else fmt
    try:
        drafted = scaffold(article, slug=slug, url=url, title=title, settings=settings, fmt=fmt)
    except CampaignError as exc:
        raise Refused(_sentence(exc.message)) from None
    if (Path(settings.campaigns_dir) / drafted.slug).exists():
        raise Refused(
            f"There is already a sequence in the folder “{drafted.slug}”: "
            "choose another folder name."
        )
    return drafted


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


@auth.login_required
async def new(request: Request, session: Session) -> Response:
    """``GET``: the form; ``POST``: the proposed emails, or (``action=create``) the folder."""
    if request.method == "GET":
        return _page(request, session, {"values": dict.fromkeys(FIELDS, "")})
    try:
        fields = await read_article_form(request, session)
    except Refused as exc:
        return _page(request, session, {"values": {}, "refused": str(exc)}, status=422)
    values = {name: fields.get(name, "") for name in FIELDS}
    values["slug"] = values["slug"].strip() or default_slug(values["url"], values["title"])
    try:
        drafted = await run_in_threadpool(draft_from, request, fields)
    except Refused as exc:
        return _page(request, session, {"values": values, "refused": str(exc)}, status=422)
    context: dict[str, Any] = {"values": values, "drafted": drafted}
    context["filename"] = fields.get("filename", "")
    if fields.get("action") != "create":
        return _page(request, session, context)
    problems = await run_in_threadpool(_create, request, drafted)
    if problems:
        context["refused"] = "The new files do not pass the check, so nothing was written."
        context["problems"] = problems
        return _page(request, session, context, status=422)
    return RedirectResponse(f"/studio/signup-form/{drafted.slug}?done=created", 303)


def _create(request: Request, drafted: Scaffold) -> list[str]:
    """Checks the new folder as ``nurture check`` would, then writes it; the problems
    that stopped it (nothing written), else ``[]``."""
    services = views.services_of(request)
    root = Path(services.settings.campaigns_dir)
    folder = root / drafted.slug
    changes = [publishing.Change(folder / name, text) for name, text in drafted.files().items()]
    with publishing.folder_lock(root):
        result = publishing.review(services.settings, changes)
        if not result.ok:
            return [f"{Path(p.path).name}:{p.line}: {p.message}" for p in result.blocking]
        try:
            write_scaffold(drafted, root)
        except CampaignError as exc:
            return [_sentence(exc.message)]
    reload.refresh(services)
    return []


def _page(
    request: Request, session: Session, context: dict[str, Any], status: int = 200
) -> Response:
    return views.render(
        request,
        "new_campaign.html",
        context,
        session=session,
        status=status,
        section="new-campaign",
    )


@auth.login_required
async def signup_form(request: Request, session: Session) -> Response:
    """``GET /studio/signup-form/{campaign}``: the sign-up form to paste into the article."""
    settings = views.settings_of(request)
    slug = request.path_params["campaign"]
    found = await run_in_threadpool(views.files, settings)
    campaign = found.catalogue.campaigns.get(slug) if views.SLUG.match(slug) else None
    if campaign is None:
        return error_response(request, 404)
    context = {
        "campaign": campaign,
        "snippet": signup_snippet(settings, campaign.slug, campaign.name),
        "hosted": f"{settings.base_url}/subscribe/{campaign.slug}",
        "created": request.query_params.get("done") == "created",
        "unpublished": not campaign.steps,
    }
    return views.render(request, "signup_form.html", context, session=session, section="campaigns")
