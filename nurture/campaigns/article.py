"""An article's sections, read from Markdown or plain text, for ``nurture new-campaign``.

Markdown: the headings (``#`` ... ``######``, or underlined) divide it; the first
heading is the title when the article opens with it and no other heading shares its
level; sections are cut at the shallowest level left, and deeper headings stay inside
their section as key points. Front matter (``---`` ... ``---``) may give the title.

Plain text (as the seed articles are written): the first line is the title when it
reads like one, and a heading is a line that reads like a title: short, capitalised
like one, not ending like a sentence, and followed by text. Paragraphs are blocks
between blank lines, or single lines when the text has no blank lines.

The text before the first section heading is the opening section, named by the title.
An article with no section headings is cut into runs of paragraphs of similar length.
Nothing here invents a word: sections hold the article's own paragraphs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from markdown_it import MarkdownIt
from markdown_it.token import Token

from nurture.campaigns.documents import YamlSyntaxError, split_front_matter

Format = Literal["markdown", "text", "auto"]

#: About this many words per step when an article has no headings to cut it by.
WORDS_PER_PART = 250
MAX_PARTS = 10
_MAX_HEADING_CHARS = 90
_MAX_HEADING_WORDS = 14
_SMALL_WORDS = frozenset(
    {"a", "an", "and", "as", "at", "but", "by", "for", "from", "if", "in", "into", "nor"}
    | {"of", "on", "or", "so", "the", "to", "up", "via", "vs", "with"}
)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+\u2022]|\d+[.)])\s+")
_MARKDOWN_HEADING = re.compile(r"^ {0,3}#{1,6}\s", re.MULTILINE)


@dataclass(frozen=True)
class Section:
    """One part of the article: its heading (``None``: an untitled run of paragraphs)
    and its paragraphs, as plain text (list items and subheadings are paragraphs too)."""

    heading: str | None
    paragraphs: tuple[str, ...]


@dataclass(frozen=True)
class Article:
    """The title (``None`` when the text has none) and the sections, in order."""

    title: str | None
    sections: tuple[Section, ...]


def parse_article(text: str, fmt: Format = "auto") -> Article:
    """Sections of an article; ``auto`` reads Markdown when a line starts with ``#``."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    if fmt == "auto":
        fmt = "markdown" if _MARKDOWN_HEADING.search(text) else "text"
    blocks, title = _markdown_blocks(text) if fmt == "markdown" else _text_blocks(text)
    return _sections(blocks, title)


# A block is (heading level, text): level 0 for a paragraph.
_Block = tuple[int, str]


def _sections(blocks: list[_Block], title: str | None) -> Article:
    levels = [level for level, _ in blocks if level]
    if not levels:
        return Article(title, tuple(_grouped([text for _, text in blocks])))
    top = min(levels)
    sections: list[Section] = []
    heading: str | None = title
    paragraphs: list[str] = []
    opening = True
    for level, text in blocks:
        if level == top:
            if not opening or paragraphs:
                sections.append(Section(heading, tuple(paragraphs)))
            heading, paragraphs, opening = text, [], False
        else:
            paragraphs.append(text)
    sections.append(Section(heading, tuple(paragraphs)))
    return Article(title, tuple(sections))


def _grouped(paragraphs: list[str]) -> list[Section]:
    """Paragraphs cut into runs of similar length, when there are no headings."""
    if not paragraphs:
        return []
    words = [len(p.split()) for p in paragraphs]
    parts = max(1, min(MAX_PARTS, len(paragraphs), round(sum(words) / WORDS_PER_PART)))
    target = sum(words) / parts
    sections: list[Section] = []
    run: list[str] = []
    done = 0
    for paragraph, count in zip(paragraphs, words, strict=True):
        run.append(paragraph)
        done += count
        if done >= target * (len(sections) + 1) and len(sections) < parts - 1:
            sections.append(Section(None, tuple(run)))
            run = []
    if run:
        sections.append(Section(None, tuple(run)))
    return sections


# -- Markdown ------------------------------------------------------------------------


def _markdown_blocks(text: str) -> tuple[list[_Block], str | None]:
    front_title: str | None = None
    if text.startswith("---\n"):
        try:
            parsed = split_front_matter(text)
        except YamlSyntaxError:
            parsed = None
        if parsed is not None:
            text = parsed.body
            data = parsed.front.data
            if isinstance(data, dict) and isinstance(data.get("title"), str):
                front_title = data["title"].strip() or None
    blocks: list[_Block] = []
    tokens = MarkdownIt("commonmark").parse(text)
    level = 0
    for token in tokens:
        if token.type == "heading_open":
            level = int(token.tag[1])
        elif token.type == "heading_close":
            level = 0
        elif token.type == "inline":
            plain = _plain(token.children or [])
            if plain:
                blocks.append((level, plain))
    title = front_title
    levels = [lvl for lvl, _ in blocks if lvl]
    if blocks and blocks[0][0] and levels.count(blocks[0][0]) == 1 and blocks[0][0] == min(levels):
        # The opening heading, alone at its level, names the article.
        title = title or blocks[0][1]
        blocks = blocks[1:]
    return blocks, title


def _plain(children: list[Token]) -> str:
    """The words of an inline Markdown run, without its markup."""
    out: list[str] = []
    for child in children:
        if child.type in ("text", "code_inline"):
            out.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            out.append(" ")
        elif child.type == "image":
            out.append(child.content)
    return " ".join("".join(out).split())


# -- plain text ----------------------------------------------------------------------


def _text_blocks(text: str) -> tuple[list[_Block], str | None]:
    lines = [line.strip() for line in text.split("\n")]
    has_blank_lines = any(
        not line and any(lines[:i]) and any(lines[i + 1 :]) for i, line in enumerate(lines)
    )
    blocks: list[_Block] = []
    title: str | None = None
    run: list[str] = []

    def flush() -> None:
        if run:
            blocks.append((0, " ".join(run)))
            run.clear()

    filled = [i for i, line in enumerate(lines) if line]
    for position, index in enumerate(filled):
        line = lines[index]
        followed = position + 1 < len(filled)
        if position == 0 and looks_like_heading(line):
            title = line
        elif followed and looks_like_heading(line):
            flush()
            blocks.append((1, line))
        elif _LIST_ITEM.match(line) or not has_blank_lines:
            flush()
            blocks.append((0, line))
        else:
            run.append(line)
            if index + 1 >= len(lines) or not lines[index + 1]:
                flush()
    flush()
    return blocks, title


def looks_like_heading(line: str) -> bool:
    """Whether a line of plain text reads like a title: short, capitalised, no full stop."""
    line = line.strip()
    words = line.split()
    if not words or len(line) > _MAX_HEADING_CHARS or len(words) > _MAX_HEADING_WORDS:
        return False
    if _LIST_ITEM.match(line) or not line[0].isupper() or line[-1] in ".,;:!\u2026-\u2014":
        return False
    significant = [w for w in words if len(w) > 3 and w.lower() not in _SMALL_WORDS]
    capitalised = [w for w in significant if w[0].isupper() or not w[0].isalpha()]
    if line.endswith("?") and len(capitalised) < len(significant):
        return False  # a question in sentence case is a sentence
    return len(capitalised) >= 0.75 * len(significant)
