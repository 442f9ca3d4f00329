"""The ``snippet`` variable of a body: ``{{ snippet.NAME }}`` renders ``snippets/NAME.md``.

Each snippet renders where it is used, in the body's own sandbox and with the body's
variables, except ``snippet`` itself (a snippet may not use another). Its text goes
into the body before Markdown runs, so a snippet on a line of its own is a paragraph
and one used mid-sentence is words of that sentence; surrounding blank lines of the
file are dropped for that reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import Environment, TemplateError

from nurture.campaigns.snippets import VARIABLE, Snippet
from nurture.exceptions import RenderError


class Blocks:
    """What ``snippet`` is in a body: rendered snippets by name, each rendered once.

    Only item access is offered (the sandbox falls back to it for ``snippet.NAME``),
    so no snippet name can reach a Python attribute. ``blank=True`` renders every known
    snippet as an empty string: ``nurture check`` checks the snippets' own files, and
    keeps a body's line numbers as written.
    """

    __slots__ = ("_blank", "_context", "_done", "_env", "_snippets")

    def __init__(
        self,
        snippets: Mapping[str, Snippet],
        env: Environment,
        context: Mapping[str, Any],
        *,
        blank: bool = False,
    ) -> None:
        self._snippets = snippets
        self._env = env
        self._context = {k: v for k, v in context.items() if k != VARIABLE}
        self._blank = blank
        self._done: dict[str, str] = {}

    def __getitem__(self, name: str) -> str:
        snippet = self._snippets.get(name) if isinstance(name, str) else None
        if snippet is None:
            known = ", ".join(sorted(self._snippets)) or "none yet"
            raise RenderError(
                f"unknown snippet {name!r} (snippets: {known}; each is a file "
                f"campaigns/snippets/NAME.md)"
            )
        if self._blank:
            return ""
        if name not in self._done:
            self._done[name] = self._render(snippet)
        return self._done[name]

    def __str__(self) -> str:
        raise RenderError("write {{ snippet.NAME }} to use the snippet named NAME")

    def _render(self, snippet: Snippet) -> str:
        try:
            text = self._env.from_string(snippet.body).render(self._context)
        except RenderError:
            raise
        except TemplateError as exc:
            line = snippet.body_line + (getattr(exc, "lineno", None) or 1) - 1
            raise RenderError(
                f"snippet {snippet.name!r} ({snippet.path}:{line}) does not render: {exc}",
                path=str(snippet.path),
                line=line,
            ) from exc
        return text.strip("\n")


def with_snippets(
    env: Environment,
    context: Mapping[str, Any],
    snippets: Mapping[str, Snippet],
    *,
    blank: bool = False,
) -> dict[str, Any]:
    """``context`` plus ``snippet``, rendering ``snippets`` in ``env`` with ``context``."""
    return {**context, VARIABLE: Blocks(snippets, env, context, blank=blank)}
