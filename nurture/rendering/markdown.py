"""Markdown bodies to HTML and to readable plain text, from one markdown-it parse.

Raw HTML in the source is disabled (it shows as text), so a body can never inject
markup into the email. A single line break is kept as a line break (``breaks``), as a
letter writer expects ("Warmly,\nAlex"). The plain-text form is rendered from the same
tokens, not by stripping the HTML: paragraphs wrapped at 72 columns, lists with ``- `` or ``1. ``,
headings underlined, links as numbered footnotes listed at the end.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from markdown_it import MarkdownIt
from markdown_it.token import Token

WIDTH = 72
_UNPARSED_LINK = re.compile(r"!?\[[^\]\n]+\](?:\([^)\n]*\)|\[[^\]\n]*\])")


def _parser() -> MarkdownIt:
    return MarkdownIt(
        "commonmark", {"html": False, "breaks": True, "linkify": False, "typographer": False}
    )


_MD = _parser()


def to_html(source: str, links: Callable[[str], str] | None = None) -> str:
    """The body as an HTML fragment (paragraphs, lists, links, images).

    ``links`` rewrites each link's target (``LINK_COUNTS``: to its ``/l/`` address).
    """
    if links is None:
        return _MD.render(source)
    return _MD.renderer.render(_parse(source, links), _MD.options, {})


def to_text(source: str, width: int = WIDTH, links: Callable[[str], str] | None = None) -> str:
    """The body as plain text, with links as footnotes ``text [1]`` listed at the end."""
    return _TextRenderer(width).render(_parse(source, links))


def _parse(source: str, links: Callable[[str], str] | None) -> list[Token]:
    tokens = _MD.parse(source)
    if links is not None:
        for token in tokens:
            for child in token.children or []:
                if child.type == "link_open":
                    child.attrSet("href", links(str(child.attrGet("href") or "")))
    return tokens


@dataclass(frozen=True)
class LinkRef:
    """A link or image in a body, for checking; ``line`` is 0-based within the body."""

    kind: Literal["link", "image", "unparsed"]
    target: str
    text: str
    line: int


def find_links(source: str) -> list[LinkRef]:
    """Every link and image, and text that looks like a link Markdown did not accept."""
    found: list[LinkRef] = []
    for token in _MD.parse(source):
        if token.type != "inline" or not token.children:
            continue
        line = token.map[0] if token.map else 0
        link: tuple[str, int, list[str]] | None = None
        for child in token.children:
            if child.type in ("softbreak", "hardbreak"):
                line += 1
            elif child.type == "link_open":
                link = (str(child.attrGet("href") or ""), line, [])
            elif child.type == "link_close" and link is not None:
                found.append(LinkRef("link", link[0], "".join(link[2]), link[1]))
                link = None
            elif child.type == "image":
                found.append(LinkRef("image", str(child.attrGet("src") or ""), child.content, line))
            elif child.type in ("text", "code_inline"):
                if link is not None:
                    link[2].append(child.content)
                if child.type == "text":
                    for match in _UNPARSED_LINK.finditer(child.content):
                        found.append(LinkRef("unparsed", "", match.group(0), line))
    return found


@dataclass
class _Container:
    """A list item or block quote that prefixes the lines inside it."""

    first: str
    rest: str
    used: bool = False

    def prefix(self) -> str:
        if self.used:
            return self.rest
        self.used = True
        return self.first


@dataclass
class _TextRenderer:
    width: int
    lines: list[str] = field(default_factory=list)
    footnotes: list[str] = field(default_factory=list)
    containers: list[_Container] = field(default_factory=list)
    #: One entry per open list: the next number (ordered) or None (bullets), and tightness.
    lists: list[tuple[int | None, bool]] = field(default_factory=list)
    #: Set when a list starts: its blank line is already written.
    fresh: bool = False

    def render(self, tokens: Sequence[Token]) -> str:
        heading: str | None = None
        for index, token in enumerate(tokens):
            kind = token.type
            if kind in ("bullet_list_open", "ordered_list_open"):
                start = int(token.attrGet("start") or 1) if kind == "ordered_list_open" else None
                self._separate()
                self.fresh = True
                self.lists.append((start, _is_tight(tokens, index)))
            elif kind in ("bullet_list_close", "ordered_list_close"):
                self.lists.pop()
            elif kind == "list_item_open":
                number, tight = self.lists[-1]
                marker = "- " if number is None else f"{number}. "
                if number is not None:
                    self.lists[-1] = (number + 1, tight)
                self.containers.append(_Container(marker, " " * len(marker)))
            elif kind == "blockquote_open":
                self.containers.append(_Container("> ", "> "))
            elif kind in ("list_item_close", "blockquote_close"):
                self.containers.pop()
            elif kind == "heading_open":
                heading = token.tag
            elif kind == "heading_close":
                heading = None
            elif kind == "inline":
                self._inline_block(token, heading)
            elif kind in ("code_block", "fence"):
                self._block(token.content.rstrip("\n").split("\n"), wrap=False)
            elif kind == "hr":
                self._block(["-" * 20], wrap=False)
        text = "\n".join(line.rstrip() for line in self.lines).strip("\n")
        if self.footnotes:
            notes = "\n".join(
                f"[{n}] {url.removeprefix('mailto:')}" for n, url in enumerate(self.footnotes, 1)
            )
            text = f"{text}\n\n{notes}"
        return text + "\n"

    def _inline_block(self, token: Token, heading: str | None) -> None:
        text = self._inline(token.children or [])
        if heading in ("h1", "h2"):
            underline = "=" if heading == "h1" else "-"
            longest = max((len(part) for part in text.split("\n")), default=0)
            self._block([*text.split("\n"), underline * longest], wrap=False)
        else:
            self._block(text.split("\n"), wrap=True)

    def _inline(self, children: Sequence[Token]) -> str:
        out: list[str] = []
        href: str | None = None
        start = 0
        for child in children:
            kind = child.type
            if kind in ("text", "code_inline"):
                out.append(child.content)
            elif kind in ("softbreak", "hardbreak"):
                out.append("\n")  # softbreaks too: the HTML keeps them (``breaks``)
            elif kind in ("strong_open", "strong_close"):
                out.append("*")
            elif kind in ("em_open", "em_close"):
                out.append("_")
            elif kind == "link_open":
                href, start = str(child.attrGet("href") or ""), len(out)
            elif kind == "link_close" and href is not None:
                label = "".join(out[start:])
                if href and label.strip() != href.removeprefix("mailto:"):
                    out.append(f" [{self._footnote(href)}]")
                href = None
            elif kind == "image":
                alt = child.content.strip()
                out.append(f"[image: {alt}]" if alt else "[image]")
        return "".join(out)

    def _footnote(self, url: str) -> int:
        if url not in self.footnotes:
            self.footnotes.append(url)
        return self.footnotes.index(url) + 1

    def _separate(self) -> None:
        """A blank line before the next block, unless inside a tight list or just opened."""
        in_tight_list = bool(self.lists) and self.lists[-1][1]
        if self.lines and not in_tight_list and not self.fresh:
            self.lines.append(self._blank_prefix())
        self.fresh = False

    def _block(self, lines: list[str], *, wrap: bool) -> None:
        self._separate()
        for segment in lines:
            first = "".join(c.prefix() for c in self.containers)
            rest = "".join(c.rest for c in self.containers)
            if not wrap:
                self.lines.append(first + segment)
                continue
            wrapper = textwrap.TextWrapper(
                width=self.width,
                initial_indent=first,
                subsequent_indent=rest,
                break_long_words=False,
                break_on_hyphens=False,
            )
            self.lines.extend(wrapper.wrap(segment) or [first])

    def _blank_prefix(self) -> str:
        # Inside a quote the blank line keeps its "> " so the quote reads as one block.
        return "".join(c.rest for c in self.containers if c.first == "> " and c.used).rstrip()


def _is_tight(tokens: Sequence[Token], index: int) -> bool:
    """Whether the list opened at ``tokens[index]`` is tight (markdown-it hides its <p>)."""
    level = tokens[index].level
    for token in tokens[index + 1 :]:
        if token.level <= level and token.type.endswith("_list_close"):
            break
        if token.type == "paragraph_open" and token.level == level + 2:
            return token.hidden
    return True
