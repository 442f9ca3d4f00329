"""The two Jinja environments: a sandbox for therapist bodies, and one for our layouts.

Bodies (Markdown written by the therapist) render in a :class:`SandboxedEnvironment`
with :class:`StrictUndefined`, so a misspelt variable is an error, not a blank. They
see only :data:`VARIABLES`. ``first_name`` renders as :data:`FIRST_NAME_MARKER`, a word
that Markdown leaves alone, which the compiler swaps for the recipient placeholder
after Markdown has run (a ``%%...%%`` placeholder would not survive Markdown intact).

Layouts (``templates/email/*.j2``) are ours: a normal environment, autoescaping the
``.mjml.j2`` templates, strict about undefined names too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from nurture.settings import Settings

#: What a body may use. ``links`` holds :data:`LINKS`; then the settings
#: ``CRISIS_LINE``, ``REPLY_POLICY`` and ``CONSULTATION_OFFER``, so the practice words
#: them once and no email promises what it does not offer; ``snippet`` holds the shared
#: blocks of ``campaigns/snippets/`` (:mod:`nurture.rendering.snippets`).
VARIABLES = (
    "first_name",
    "therapist_name",
    "practice_name",
    "links",
    "crisis_line",
    "reply_policy",
    "consultation_offer",
    "snippet",
)
LINKS = ("article", "booking", "site")
#: Stands in for the recipient's first name until after Markdown (letters only, so no
#: Markdown syntax can touch it).
FIRST_NAME_MARKER = "Qzfirstnamezq"
#: Stands in for link targets when checking links, so a variable is told from a typo.
LINK_MARKER = "nurture-link:"

LAYOUT = "layout"
CONFIRM = "confirm"
#: Every layout, by base name; each has a ``.mjml.j2`` and a ``.txt.j2`` template.
LAYOUTS = (LAYOUT, CONFIRM)


def body_environment() -> SandboxedEnvironment:
    """The sandbox bodies render in; undefined variables raise."""
    return SandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,  # the output is Markdown, escaped by the Markdown renderer
        keep_trailing_newline=True,
    )


def body_context(
    settings: Settings, article_url: str, *, first_name: str = FIRST_NAME_MARKER
) -> dict[str, Any]:
    """The variables a body sees; ``article_url`` is the campaign's (site URL for newsletters)."""
    return {
        "first_name": first_name,
        "therapist_name": settings.therapist_name,
        "practice_name": settings.practice_name,
        "crisis_line": settings.crisis_line,
        "reply_policy": settings.reply_policy,
        "consultation_offer": settings.consultation_offer,
        "links": {
            "article": article_url,
            "booking": settings.booking_url,
            "site": settings.site_url,
        },
    }


def link_marker_context(settings: Settings) -> dict[str, Any]:
    """Like :func:`body_context`, with each link replaced by ``nurture-link:<name>``."""
    context = body_context(settings, "")
    context["links"] = {name: f"{LINK_MARKER}{name}" for name in LINKS}
    return context


def email_templates_dir(settings: Settings) -> Path:
    return Path(settings.templates_dir) / "email"


def layout_environment(settings: Settings) -> Environment:
    """Loads ``templates/email``; ``.mjml.j2`` templates are autoescaped."""
    env = Environment(
        loader=FileSystemLoader(email_templates_dir(settings)),
        autoescape=select_autoescape(enabled_extensions=("mjml.j2",), default=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["lines"] = _lines
    # Every layout's footer shows these; globals keep each caller's context unchanged.
    env.globals["crisis_line"] = settings.crisis_line
    env.globals["site_name"] = site_name(settings.site_url)
    return env


def site_name(url: str) -> str:
    """``https://www.example-practice.com/x`` -> ``www.example-practice.com``."""
    return url.split("://", 1)[-1].split("/", 1)[0]


def _lines(value: str) -> list[str]:
    """The non-blank lines of a value (a postal address may span several)."""
    return [line.strip() for line in str(value).splitlines() if line.strip()]
