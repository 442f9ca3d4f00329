"""Compiles a step (or newsletter) once into :class:`~nurture.mail.messages.Content`.

The expensive work (Jinja, Markdown, MJML) happens once per step and per
:class:`Renderer`; the result holds ``%%placeholders%%`` for what differs between
recipients, which :meth:`Content.personalise` (or SendGrid's substitutions) fills in.
Nothing per-recipient ever passes through here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateError
from markupsafe import Markup
from mjml import mjml2html

from nurture.campaigns.model import NEWSLETTERS, Catalogue, Newsletter, Step
from nurture.campaigns.snippets import Snippet
from nurture.exceptions import NurtureError, RenderError
from nurture.mail.links import LinkIds
from nurture.mail.messages import Content, placeholder
from nurture.rendering import markdown, snippets, templates
from nurture.settings import Settings

CONFIRMATION_STEP = "confirmation"


def compile_mjml(source: str) -> str:
    """MJML -> HTML with mjml-python; raises :class:`RenderError` when it does not compile."""
    try:
        return mjml2html(source)
    except Exception as exc:  # mjml-python raises bare ValueErrors from its Rust core
        raise RenderError(f"MJML did not compile: {exc}") from exc


@dataclass(frozen=True)
class Compiled:
    """A compiled email and the MJML it came from."""

    mjml: str
    content: Content


@dataclass(frozen=True)
class Body:
    """A therapist body rendered to HTML and text, with ``first_name`` as placeholders."""

    html: str
    text: str


def render_body(
    settings: Settings,
    source: str,
    article_url: str,
    *,
    links: Callable[[str], str] | None = None,
    shared: Mapping[str, Snippet] | None = None,
) -> Body:
    """Runs the sandboxed Jinja, then Markdown.

    ``links`` rewrites every link target (``LINK_COUNTS``: to ``BASE_URL/l/{id}``).
    ``shared`` are the catalogue's snippets, for ``{{ snippet.NAME }}``.
    Raises Jinja's errors unchanged (the caller knows the file and line), and
    :class:`RenderError` when ``first_name`` went through a filter.
    """
    env = templates.body_environment()
    context = templates.body_context(settings, article_url)
    context = snippets.with_snippets(env, context, shared or {})
    markdown_source = env.from_string(source).render(context)
    marker = templates.FIRST_NAME_MARKER
    html = markdown.to_html(markdown_source, links).replace(
        marker, placeholder("first_name", for_html=True)
    )
    text = markdown.to_text(markdown_source, links=links).replace(
        marker, placeholder("first_name", for_html=False)
    )
    if marker.lower() in html.lower():
        # A filter changed the stand-in ({{ first_name|upper }}): it would go out verbatim.
        raise RenderError("first_name cannot go through a filter; write {{ first_name }}")
    return Body(html, text)


class Renderer:
    """Compiles steps, newsletters and confirmation emails, each once per instance.

    Thread-safe. Keep one per dispatch run (or per process) and drop it to pick up
    edited campaign files along with a fresh catalogue. With ``LINK_COUNTS`` on, body
    links become ``BASE_URL/l/{id}`` here, once per step (see :mod:`nurture.mail.links`).
    """

    def __init__(self, settings: Settings, catalogue: Catalogue) -> None:
        self._settings = settings
        self._catalogue = catalogue
        self._link_ids = (
            LinkIds(settings.secret_key_values(), settings.base_url)
            if settings.link_counts
            else None
        )
        self._layouts = templates.layout_environment(settings)
        self._cache: dict[tuple[str, str], Compiled] = {}
        self._lock = threading.Lock()

    def compile(self, campaign: str, step: str) -> Content:
        """The step's content (``campaign == "newsletters"``: a newsletter); marketing mail."""
        return self._compiled(campaign, step).content

    def mjml_source(self, campaign: str, step: str) -> str:
        """The MJML the step compiles from, placeholders included (for preview)."""
        return self._compiled(campaign, step).mjml

    def compile_confirmation(self, campaign: str) -> Content:
        """The double opt-in email for a campaign: transactional, with ``%%confirm_url%%``."""
        key = (campaign, f"\0{CONFIRMATION_STEP}")
        with self._lock:
            if key not in self._cache:
                self._cache[key] = self._build_confirmation(campaign)
            return self._cache[key].content

    def confirmation_mjml_source(self, campaign: str) -> str:
        self.compile_confirmation(campaign)
        return self._cache[(campaign, f"\0{CONFIRMATION_STEP}")].mjml

    # -- building -------------------------------------------------------------

    def _compiled(self, campaign: str, step: str) -> Compiled:
        key = (campaign, step)
        with self._lock:
            if key not in self._cache:
                self._cache[key] = self._build(campaign, step)
            return self._cache[key]

    def _build(self, campaign: str, step: str) -> Compiled:
        item = self._catalogue.content_for(campaign, step)
        if isinstance(item, Newsletter):
            article_title, article_url = "", self._settings.site_url
        else:
            owner = self._catalogue.campaign(campaign)
            article_title, article_url = owner.article_title, owner.article_url
        body = self._body(item, campaign, article_url)
        context = self._layout_context(item.subject, item.preheader, article_title)
        context.update(body_html=Markup(body.html), body_text=body.text.rstrip("\n"))
        context["archive_url"] = self._archive_url(item, campaign)
        mjml_source, html, text = self._layout(templates.LAYOUT, context, campaign, step)
        content = Content(campaign, step, item.subject, item.preheader, html, text, marketing=True)
        return Compiled(mjml_source, content)

    def _build_confirmation(self, campaign: str) -> Compiled:
        wording = self._wording()
        if campaign == NEWSLETTERS:
            article_title = ""
        else:
            article_title = self._catalogue.campaign(campaign).article_title
        subject, preheader = wording["confirm_subject"], wording["confirm_preheader"]
        context = self._layout_context(subject, preheader, article_title)
        context["confirm_days"] = self._settings.confirm_token_days
        mjml_source, html, text = self._layout(
            templates.CONFIRM, context, campaign, CONFIRMATION_STEP
        )
        content = Content(
            campaign, CONFIRMATION_STEP, subject, preheader, html, text, marketing=False
        )
        return Compiled(mjml_source, content)

    def _archive_url(self, item: Step | Newsletter, campaign: str) -> str:
        """The public web copy of a newsletter (or archived step): "View in your browser"."""
        base = self._settings.base_url
        if isinstance(item, Newsletter):
            return f"{base}/archive/{item.slug}"
        if getattr(self._catalogue.campaign(campaign), "archive", False):
            return f"{base}/archive/{campaign}/{item.slug}"
        return ""

    def _body(self, item: Step | Newsletter, campaign: str, article_url: str) -> Body:
        ids = self._link_ids
        links = ids.wrapper(campaign, item.slug) if ids is not None else None
        try:
            return render_body(
                self._settings, item.body, article_url, links=links, shared=self._catalogue.snippets
            )
        except RenderError as exc:
            line, detail = item.body_line, exc.message
        except TemplateError as exc:
            line, detail = item.body_line + (getattr(exc, "lineno", None) or 1) - 1, str(exc)
        # The message names the file for logs; the context lets `check` report it alone.
        raise RenderError(
            f"{item.path}:{line}: {detail}",
            campaign=campaign,
            step=item.path.stem,
            path=str(item.path),
            line=line,
            detail=detail,
        )

    def _layout_context(self, subject: str, preheader: str, article_title: str) -> dict[str, Any]:
        return {
            "subject": subject,
            "preheader": preheader,
            "article_title": article_title,
            "practice_name": self._settings.practice_name,
            "postal_address": self._settings.postal_address_or_placeholder,
        }

    def _layout(
        self, name: str, context: dict[str, Any], campaign: str, step: str
    ) -> tuple[str, str, str]:
        try:
            mjml_source = self._layouts.get_template(f"{name}.mjml.j2").render(context)
            text = self._layouts.get_template(f"{name}.txt.j2").render(context)
        except TemplateError as exc:
            raise RenderError(f"layout {name!r}: {exc}", campaign=campaign, step=step) from exc
        try:
            html = compile_mjml(mjml_source)
        except NurtureError as exc:
            raise RenderError(exc.message, campaign=campaign, step=step) from exc
        text = "\n".join(line.rstrip() for line in text.splitlines()).strip("\n") + "\n"
        for part in (html, text):
            if "{{" in part or "{%" in part:
                raise RenderError(
                    "Jinja syntax left in the rendered email", campaign=campaign, step=step
                )
        return mjml_source, html, text

    def _wording(self) -> dict[str, Any]:
        module = self._layouts.get_template("_wording.j2").module
        return {name: getattr(module, name) for name in ("confirm_subject", "confirm_preheader")}
