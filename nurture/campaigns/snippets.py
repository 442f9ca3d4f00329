"""Shared blocks: ``campaigns/snippets/NAME.md``, used in any body as ``{{ snippet.NAME }}``.

A snippet is the practice's own wording of something many emails say (the booking
paragraph, what follows an invitation to reply), written once: edit the file and every
email that uses it changes at its next send, because the catalogue carries the
snippets' text and a reloaded catalogue brings a fresh :class:`~nurture.rendering.Renderer`.

The file is the whole block, Markdown with no front matter. It renders in the same
sandbox as a body, with the same variables (``first_name``, ``links``,
``consultation_offer``, ...), where the body uses it; it may not use other snippets,
so no snippet can loop or hide another. Names are what ``snippet.NAME`` can spell:
a letter, then letters, digits or ``_``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, TemplateSyntaxError, nodes

from nurture.campaigns.problems import Problems

#: The folder under ``campaigns/`` (a campaign may not take this name).
SNIPPETS = "snippets"
#: The body variable holding them: ``{{ snippet.NAME }}``.
VARIABLE = "snippet"

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Snippet:
    """One shared block; ``body`` starts at line ``body_line`` (always 1) of ``path``."""

    name: str
    body: str
    path: Path
    body_line: int = 1


def read_snippets(folder: Path, problems: Problems) -> dict[str, Snippet]:
    """Every ``NAME.md`` in ``folder``, by name; bad names and unreadable files are errors.

    Files whose names start with ``.`` or ``_`` are left out, as the loader leaves out
    such folders (editor backups, the studio's history).
    """
    found: dict[str, Snippet] = {}
    for path in sorted(folder.glob("*.md")):
        if path.name.startswith((".", "_")):
            continue
        if not _NAME.match(path.stem):
            message = (
                f"snippet name {path.stem!r}: use a letter, then letters, digits or '_' "
                "(it is written {{ snippet.NAME }}, where '-' would not work)"
            )
            problems.error(path, 1, message)
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.error(path, 1, f"cannot read the snippet: {exc}")
            continue
        found[path.stem] = Snippet(path.stem, text, path)
    return found


@dataclass(frozen=True)
class Use:
    """One use of ``snippet`` in a template: ``name`` is ``None`` when not spelt out
    (``{{ snippet }}`` alone, or ``snippet[some_variable]``); ``line`` is 1-based."""

    name: str | None
    line: int


def names_used(source: str) -> set[str]:
    """The snippets a body (or newsletter) uses by name, e.g. for "where is it used".

    A body that does not parse uses none (``nurture check`` reports it).
    """
    try:
        ast = Environment().parse(source)
    except TemplateSyntaxError:
        return set()
    return {use.name for use in uses(ast) if use.name is not None}


def uses(ast: nodes.Template) -> list[Use]:
    """Every use of the ``snippet`` variable in a parsed body, in order of lines."""
    found: list[Use] = []
    named: set[int] = set()
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        key: object
        if isinstance(node, nodes.Getattr):
            target, key = node.node, node.attr
        elif isinstance(node, nodes.Getitem):
            target = node.node
            key = node.arg.value if isinstance(node.arg, nodes.Const) else None
        else:
            continue
        if not (isinstance(target, nodes.Name) and target.name == VARIABLE):
            continue
        named.add(id(target))
        found.append(Use(key if isinstance(key, str) else None, node.lineno))
    for name in ast.find_all(nodes.Name):
        if name.name == VARIABLE and name.ctx == "load" and id(name) not in named:
            found.append(Use(None, name.lineno))
    return sorted(found, key=lambda use: use.line)
