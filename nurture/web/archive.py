"""The public archive: ``GET /archive``, ``/archive/{slug}`` and ``/archive.atom``.

Web copies of the newsletters that went out (newest first) and of the steps of every
campaign whose ``campaign.yaml`` says ``archive: true``. A page is the email's body as
every reader got it with the first-name fallback in place of a name: no token, no
personal link, no link counting, no cookie, no script. Anyone may read and cache them
(``ETag``, ``Cache-Control: public``); each carries the practice's name and a way to
sign up. Every newsletter links here ("View in your browser", HTML and text parts).
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from nurture.campaigns import Catalogue
from nurture.campaigns.model import NEWSLETTERS
from nurture.mail.messages import placeholder
from nurture.rendering.compiler import render_body
from nurture.runtime.services import Services
from nurture.store import database
from nurture.store import planning as planning_ops
from nurture.web.templating import get_templates

ATOM = "http://www.w3.org/2005/Atom"
HEADERS = {
    "Cache-Control": "public, max-age=300",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}


@dataclass(frozen=True)
class Entry:
    """One archived email: a sent newsletter or a step of an ``archive: true`` campaign."""

    path: str  # under /archive/
    subject: str
    preheader: str
    date: datetime
    campaign: str  # the sequence's slug, or "newsletters"
    body: str
    article_url: str

    def body_html(self, services: Services, fallback: str) -> Markup:
        """The body as HTML, with the first-name fallback and no link rewriting."""
        shared = services.catalogue.snippets
        body = render_body(services.settings, self.body, self.article_url, shared=shared)
        name = html.escape(fallback, quote=True)
        return Markup(body.html.replace(placeholder("first_name", for_html=True), name))


def entries(services: Services, now: datetime) -> list[Entry]:
    """Sent newsletters (newest first), then archived steps, campaign by campaign."""
    catalogue: Catalogue = services.catalogue
    with database.reading(services.engine) as conn:
        planned = planning_ops.planned_slugs(conn)
    site = services.settings.site_url
    letters = [
        Entry(slug, n.subject, n.preheader, n.send_at, NEWSLETTERS, n.body, site)
        for slug, n in catalogue.newsletters.items()
        if slug in planned and n.send_at <= now
    ]
    letters.sort(key=lambda e: e.date, reverse=True)
    steps = [
        Entry(
            f"{c.slug}/{s.slug}",
            s.subject,
            s.preheader,
            datetime.fromtimestamp(s.path.stat().st_mtime, UTC),
            c.slug,
            s.body,
            c.article_url,
        )
        for c in catalogue.campaigns.values()
        if c.archive
        for s in c.steps
    ]
    return letters + steps


def _cached(request: Request, body: bytes, media_type: str) -> Response:
    """``body`` with a strong ETag; ``304`` when the client already holds it."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {**HEADERS, "ETag": etag}
    wanted = [t.strip() for t in request.headers.get("if-none-match", "").split(",")]
    if etag in wanted or "*" in wanted:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def _render(request: Request, name: str, context: dict[str, Any]) -> bytes:
    services: Services = request.app.state.services
    template = get_templates(services.settings).get_template(name)
    return template.render({"request": request, **context}).encode()


def _signups(services: Services) -> list[dict[str, str]]:
    return [{"slug": c.slug, "name": c.name} for c in services.catalogue.campaigns.values()]


async def index(request: Request) -> Response:
    """``GET /archive``: every archived email, newsletters newest first."""
    services: Services = request.app.state.services
    found = await run_in_threadpool(entries, services, services.clock())
    letters = [e for e in found if e.campaign == NEWSLETTERS]
    series = {
        c.slug: {"name": c.name, "entries": [e for e in found if e.campaign == c.slug]}
        for c in services.catalogue.campaigns.values()
        if c.archive
    }
    context = {"letters": letters, "series": series, "signups": _signups(services)}
    return _cached(request, _render(request, "archive.html", context), "text/html")


async def page(request: Request) -> Response:
    """``GET /archive/{slug}`` (a newsletter) or ``/archive/{campaign}/{step}``."""
    services: Services = request.app.state.services
    path = request.path_params["path"]
    found = await run_in_threadpool(entries, services, services.clock())
    entry = next((e for e in found if e.path == path), None)
    if entry is None:
        body = _render(request, "archive_missing.html", {"signups": _signups(services)})
        return Response(body, 404, media_type="text/html", headers={"Cache-Control": "no-store"})
    fallback = services.catalogue.first_name_fallback(entry.campaign)
    context = {
        "entry": entry,
        "body_html": entry.body_html(services, fallback),
        "signups": _signups(services),
        "signup_slug": entry.campaign if entry.campaign != NEWSLETTERS else None,
    }
    return _cached(request, _render(request, "archive_page.html", context), "text/html")


async def feed(request: Request) -> Response:
    """``GET /archive.atom``: the archive as an Atom 1.0 feed (RFC 4287)."""
    services: Services = request.app.state.services
    found = await run_in_threadpool(entries, services, services.clock())
    body = atom(services, found)
    return _cached(request, body, "application/atom+xml")


def atom(services: Services, found: list[Entry]) -> bytes:
    """The Atom document for ``found``, built as XML (never by string pasting)."""
    settings = services.settings
    base = f"{settings.base_url}/archive"
    ElementTree.register_namespace("", ATOM)

    def sub(parent: ElementTree.Element, tag: str, text: str | None = None, **attrs: str) -> Any:
        element = ElementTree.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
        element.text = text
        return element

    root = ElementTree.Element(f"{{{ATOM}}}feed")
    sub(root, "id", base)
    sub(root, "title", f"Letters from {settings.practice_name}")
    newest = max((e.date for e in found), default=datetime(2026, 1, 1, tzinfo=UTC))
    sub(root, "updated", _stamp(newest))
    sub(root, "link", rel="self", href=f"{settings.base_url}/archive.atom")
    sub(root, "link", rel="alternate", type="text/html", href=base)
    author = sub(root, "author")
    sub(author, "name", settings.therapist_name)
    for e in found:
        entry = sub(root, "entry")
        sub(entry, "id", f"{base}/{e.path}")
        sub(entry, "title", e.subject)
        sub(entry, "updated", _stamp(e.date))
        sub(entry, "link", rel="alternate", type="text/html", href=f"{base}/{e.path}")
        if e.preheader:
            sub(entry, "summary", e.preheader)
        fallback = services.catalogue.first_name_fallback(e.campaign)
        sub(entry, "content", str(e.body_html(services, fallback)), type="html")
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def routes() -> list[BaseRoute]:
    """The archive's three routes; they read ``app.state.services``."""
    return [
        Route("/archive", index, methods=["GET"], name="archive"),
        Route("/archive.atom", feed, methods=["GET"], name="archive_feed"),
        Route("/archive/{path:path}", page, methods=["GET"], name="archive_page"),
    ]
