"""``nurture check``: every problem in the campaigns and email templates, with its line.

:func:`check` reads the catalogue (structural problems come from the loader), then
checks each email's subject, preheader, variables, links and images, the discretion
list, snippets (unknown ones, at the line using them; each snippet's own text at its
lines) and ``> NOTE:`` lines (an error in anything published, a warning in a draft),
and finally compiles the layouts and every email, drafts included. The CLI prints each
:class:`Problem` and exits with :func:`exit_status`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

from jinja2 import TemplateError, TemplateNotFound, TemplateSyntaxError, meta, nodes
from markupsafe import Markup

from nurture.campaigns import notes
from nurture.campaigns import snippets as shared
from nurture.campaigns.discretion import find_exposures
from nurture.campaigns.loader import read_catalogue
from nurture.campaigns.model import NEWSLETTERS, Catalogue, Newsletter, Step
from nurture.campaigns.problems import Problem, Problems
from nurture.campaigns.snippets import Snippet
from nurture.exceptions import NurtureError
from nurture.rendering import compiler, markdown, templates
from nurture.rendering.snippets import with_snippets
from nurture.settings import Settings

__all__ = ["Problem", "check", "exit_status"]

MAX_SUBJECT = 70
MAX_PREHEADER = 150
#: Words by which a body invites the reader to write back (``reply_policy`` itself is
#: one word with its underscore, so it never matches).
INVITES_REPLY = re.compile(
    r"\b(reply|replies|replying|write back|writing back|write to me|email me)\b", re.IGNORECASE
)
_PLACES_POLICY = re.compile(r"\{\{-?\s*reply_policy\b")
_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)
_USES_SNIPPET = re.compile(r"\{\{-?\s*snippet\.([A-Za-z]\w*)")
_KNOWN = ", ".join(
    [v for v in templates.VARIABLES if v not in ("links", shared.VARIABLE)]
    + [f"links.{n}" for n in templates.LINKS]
    + [f"{shared.VARIABLE}.NAME"]
)
#: What a body check looks at: an email, or a shared block used by emails.
Item = Step | Newsletter | Snippet


def check(settings: Settings) -> list[Problem]:
    """Every problem found, errors and warnings, file by file in the order found."""
    problems = Problems()
    catalogue = read_catalogue(settings, problems)
    for campaign in catalogue.campaigns.values():
        words = [*settings.discretion_words, *campaign.discretion_words]
        from_name = catalogue.from_name(campaign.slug, settings.from_name)
        origin = "" if campaign.from_name else " (NURTURE_FROM_NAME)"
        line = _key_line(campaign.path, "from_name")
        _discretion(problems, campaign.path, line, f"From name{origin}", from_name, words)
        for step in campaign.outline():  # drafts too: they are previewed and test-sent
            _check_item(problems, settings, step, words, catalogue.snippets)
    for newsletter in catalogue.newsletters.values():
        words = list(settings.discretion_words)
        label = "From name (NURTURE_FROM_NAME)"
        from_name = catalogue.from_name(NEWSLETTERS, settings.from_name)
        _discretion(problems, newsletter.path, 1, label, from_name, words)
        _check_item(problems, settings, newsletter, words, catalogue.snippets)
    for snippet in catalogue.snippets.values():
        _check_text(problems, settings, snippet, catalogue.snippets)
    layouts_ok = _check_layouts(problems, settings)
    if layouts_ok and not problems.errors:
        _compile_everything(problems, settings, catalogue)
    return problems.items


def exit_status(problems: Iterable[Problem]) -> int:
    """1 when any problem is an error, else 0 (warnings alone do not fail)."""
    return 1 if any(p.is_error for p in problems) else 0


# -- one email ------------------------------------------------------------------


def _check_item(
    problems: Problems,
    settings: Settings,
    item: Step | Newsletter,
    words: list[str],
    snippets: Mapping[str, Snippet],
) -> None:
    path = item.path
    subject_line = _key_line(path, "subject")
    preheader_line = _key_line(path, "preheader")
    if len(item.subject) > MAX_SUBJECT:
        problems.error(
            path,
            subject_line,
            f"subject is {len(item.subject)} characters; keep it to {MAX_SUBJECT} or fewer",
        )
    if not item.preheader:
        message = "missing preheader: mail apps will show the first words of the body instead"
        problems.warning(path, preheader_line, message)
    elif len(item.preheader) > MAX_PREHEADER:
        problems.warning(
            path,
            preheader_line,
            f"preheader is {len(item.preheader)} characters; "
            f"mail apps show about {MAX_PREHEADER} at most",
        )
    for label, value, line in (
        ("subject", item.subject, subject_line),
        ("preheader", item.preheader, preheader_line),
    ):
        if "{{" in value or "{%" in value or "%%" in value:
            problems.error(path, line, f"variables are not supported in the {label}")
        if "\n" in value or "\r" in value:
            problems.error(path, line, f"the {label} must be one line")
        _discretion(problems, path, line, label, value, words)
    _check_text(problems, settings, item, snippets)


def _check_text(
    problems: Problems, settings: Settings, item: Item, snippets: Mapping[str, Snippet]
) -> None:
    """The checks of a body or a snippet: template, links, reply policy, notes."""
    rendered = _check_body(problems, settings, item, snippets)
    if rendered is not None:
        _check_links(problems, item, rendered)
    _check_reply_policy(problems, settings, item, snippets)
    _check_notes(problems, item)


def _check_notes(problems: Problems, item: Item) -> None:
    """Refuses quoted notes (``> NOTE:`` lines) anywhere a reader could see them."""
    draft = isinstance(item, Step) and item.draft
    for block in notes.note_blocks(item.body):
        line = item.body_line + block.line
        count = f"{block.count} note{'s' if block.count > 1 else ''}"
        if draft:
            problems.warning(
                item.path,
                line,
                f"draft: {count} to rewrite ('{notes.MARKER}' lines); write this part in "
                "your own words and delete them before removing 'draft: true'",
            )
        else:
            problems.error(
                item.path,
                line,
                f"{count} to rewrite ('{notes.MARKER}' lines): write this part in your own "
                "words and delete them; an email still holding notes cannot be published",
            )


def _check_reply_policy(
    problems: Problems, settings: Settings, item: Item, snippets: Mapping[str, Snippet]
) -> None:
    """Warns where a body invites replies without saying who reads them, and how soon."""
    # A {# comment #} is for the writer, not an invitation; its newlines keep the lines.
    source = _COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), item.body)
    invitation = INVITES_REPLY.search(source)
    if invitation is None:
        return
    line = item.body_line + source.count("\n", 0, invitation.start())
    if not settings.reply_policy.strip():
        problems.warning(
            item.path,
            line,
            "this email invites replies but no reply policy is configured: set "
            "NURTURE_REPLY_POLICY (who reads replies, how soon, that a reply is not therapy)",
        )
    elif not _places_policy(item.body, snippets):
        problems.warning(
            item.path,
            line,
            "this email invites replies: put {{ reply_policy }} near the invitation",
        )


def _places_policy(body: str, snippets: Mapping[str, Snippet]) -> bool:
    """Whether ``body`` places ``{{ reply_policy }}``, itself or through a snippet."""
    if _PLACES_POLICY.search(body):
        return True
    used = (snippets.get(name) for name in _USES_SNIPPET.findall(body))
    return any(s is not None and _PLACES_POLICY.search(s.body) for s in used)


def _check_snippet_uses(
    problems: Problems, item: Item, ast: nodes.Template, snippets: Mapping[str, Snippet]
) -> bool:
    """Errors for snippets used in a snippet, unnamed or unknown; True when any."""
    found = False
    known = ", ".join(sorted(snippets)) or "none yet"
    for use in shared.uses(ast):
        found = True
        line = item.body_line + use.line - 1
        if isinstance(item, Snippet):
            problems.error(item.path, line, "a snippet may not use other snippets")
        elif use.name is None:
            problems.error(item.path, line, "write {{ snippet.NAME }}, naming one snippet")
        elif use.name not in snippets:
            message = (
                f"unknown snippet '{use.name}' (snippets: {known}; each is a file "
                f"{shared.SNIPPETS}/NAME.md in the campaigns folder)"
            )
            problems.error(item.path, line, message)
        else:
            found = False
    return found


def _check_body(
    problems: Problems, settings: Settings, item: Item, snippets: Mapping[str, Snippet]
) -> str | None:
    """Jinja checks; returns the body rendered with link markers when it renders."""
    env = templates.body_environment()
    try:
        ast = env.parse(item.body)
    except TemplateSyntaxError as exc:
        line = item.body_line + (exc.lineno or 1) - 1
        problems.error(item.path, line, f"template syntax error: {exc.message}")
        return None
    found = False
    for name in sorted(meta.find_undeclared_variables(ast) - set(templates.VARIABLES)):
        found = True
        line = item.body_line + _first_use(ast, name) - 1
        problems.error(item.path, line, f"unknown variable '{name}' (known: {_KNOWN})")
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        key: object
        if isinstance(node, nodes.Getattr):
            target, key = node.node, node.attr
        elif isinstance(node, nodes.Getitem):
            target, key = node.node, _const(node.arg)
        else:
            continue
        if isinstance(target, nodes.Name) and target.name == "links" and key not in templates.LINKS:
            found = True
            line = item.body_line + node.lineno - 1
            problems.error(item.path, line, f"unknown variable 'links.{key}' (known: {_KNOWN})")
    found = _check_snippet_uses(problems, item, ast, snippets) or found
    if found:
        return None
    # Snippets render empty here: each is checked in its own file, and line numbers
    # of what follows stay as written.
    context = with_snippets(env, templates.link_marker_context(settings), snippets, blank=True)
    try:
        return env.from_string(item.body).render(context)
    except Exception as exc:  # any failure to render is the author's to see, with its line
        line = item.body_line + _template_line(sys.exc_info()[2]) - 1
        problems.error(item.path, line, f"the body does not render: {exc}")
        return None


def _check_links(problems: Problems, item: Item, rendered: str) -> None:
    for ref in markdown.find_links(rendered):
        line = item.body_line + ref.line
        if ref.kind == "unparsed":
            problems.error(
                item.path,
                line,
                f"{ref.text!r} looks like a link but is not one "
                "(a space in the address, or a missing reference?)",
            )
            continue
        what = f"image {ref.target!r}" if ref.kind == "image" else f"link {ref.text!r}"
        if ref.kind == "image" and not ref.text.strip():
            problems.error(item.path, line, f"{what} has no alt text: ![describe it](...)")
        message = _link_problem(ref.target, image=ref.kind == "image")
        if message:
            problems.error(item.path, line, f"{what}: {message}")


def _link_problem(target: str, *, image: bool) -> str | None:
    if not target.strip():
        return "empty link target"
    if target.startswith(templates.LINK_MARKER):
        return None
    if target.startswith("mailto:") and not image:
        return None if "@" in target else f"bad mailto: address {target!r}"
    if re.match(r"^https://[^\s/?#]+\.[^\s/?#]+", target):
        return None
    if target.startswith("http://"):
        return f"{target!r} is not secure: use https://"
    return f"{target!r} is not an https:// URL (or links.article, links.booking, links.site)"


def _discretion(
    problems: Problems, path: Path, line: int, label: str, value: str, words: list[str]
) -> None:
    for exposure in find_exposures(value, words):
        problems.error(
            path,
            line,
            f"{label} contains {exposure.found!r}, which could expose the topic on a lock "
            f"screen (discretion list: {exposure.entry!r})",
        )


# -- layouts and compilation -----------------------------------------------------


def _check_layouts(problems: Problems, settings: Settings) -> bool:
    """Parses and compiles each layout with sample values; False when any fails."""
    folder = templates.email_templates_dir(settings)
    env = templates.layout_environment(settings)
    ok = True
    sample: dict[str, Any] = {
        "subject": "Sample subject",
        "preheader": "Sample preheader",
        "article_title": "Sample article",
        "practice_name": settings.practice_name,
        "postal_address": settings.postal_address_or_placeholder,
        "body_html": Markup("<p>Sample body</p>"),
        "body_text": "Sample body",
        "confirm_days": settings.confirm_token_days,
    }
    for name in templates.LAYOUTS:
        for suffix in ("mjml.j2", "txt.j2"):
            filename = f"{name}.{suffix}"
            try:
                output = env.get_template(filename).render(sample)
            except TemplateNotFound as exc:
                problems.error(folder / str(exc.name or filename), 1, "template not found")
                ok = False
                continue
            except TemplateSyntaxError as exc:
                where = Path(exc.filename) if exc.filename else folder / filename
                problems.error(where, exc.lineno or 1, f"template syntax error: {exc.message}")
                ok = False
                continue
            except TemplateError as exc:
                line = _template_line(sys.exc_info()[2], str(folder))
                problems.error(folder / filename, line, f"template does not render: {exc}")
                ok = False
                continue
            if suffix == "mjml.j2":
                try:
                    compiler.compile_mjml(output)
                except NurtureError as exc:
                    problems.error(folder / filename, 1, exc.message)
                    ok = False
    return ok


def _compile_everything(problems: Problems, settings: Settings, catalogue: Catalogue) -> None:
    """Compiles every email as the service will, so nothing fails first at send time."""
    renderer = compiler.Renderer(settings, catalogue)
    jobs: list[tuple[Path, int, Callable[[], object]]] = []
    for campaign in catalogue.campaigns.values():
        for step in campaign.outline():
            jobs.append(
                (step.path, step.body_line, partial(renderer.compile, campaign.slug, step.slug))
            )
        jobs.append((campaign.path, 1, partial(renderer.compile_confirmation, campaign.slug)))
    for newsletter in catalogue.newsletters.values():
        jobs.append(
            (
                newsletter.path,
                newsletter.body_line,
                partial(renderer.compile, NEWSLETTERS, newsletter.slug),
            )
        )
    for path, line, build in jobs:
        try:
            build()
        except NurtureError as exc:
            context = exc.context
            where = context.get("path", path), context.get("line", line)
            problems.error(*where, context.get("detail", exc.message))


# -- helpers -------------------------------------------------------------------------


def _key_line(path: Path, key: str) -> int:
    """The line of ``key:`` in a YAML file or front matter (1 when absent)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return 1
    pattern = re.compile(rf"^{re.escape(key)}\s*:")
    return next((n for n, text in enumerate(lines, 1) if pattern.match(text)), 1)


def _first_use(ast: nodes.Template, name: str) -> int:
    lines = [n.lineno for n in ast.find_all(nodes.Name) if n.name == name and n.ctx == "load"]
    return min(lines, default=1)


def _const(node: nodes.Node) -> object:
    return node.value if isinstance(node, nodes.Const) else None


def _template_line(tb: TracebackType | None, filename: str = "<template>") -> int:
    """The template line where an exception was raised, from Jinja's rewritten traceback."""
    line = 1
    while tb is not None:
        code = tb.tb_frame.f_code.co_filename
        if code == filename or code.startswith(filename):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
