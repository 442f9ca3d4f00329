"""A new campaign drafted from an article: ``nurture new-campaign`` and the studio.

:func:`scaffold` is pure: article text in, a :class:`Scaffold` out (every file's text),
nothing read or written. :func:`write_scaffold` puts it in ``campaigns/SLUG/`` in one
step. The draft is an outline, never copy: one step per section of the article
(:mod:`.article`), each ``draft: true``, with

- a discreet draft subject ("Part 3: What I Don't Do", cut before any word on the
  discretion list, else "A note from the practice (3)") and a neutral preheader;
- the section's key points (the first sentence of each paragraph, quoted word for
  word) on ``> NOTE:`` lines, which ``nurture check`` refuses in a published step;
- delays of 0 for the first step, then 2, 3, 3 and 4 days.

Only the greeting and the signature (``{{ first_name }}``, ``{{ therapist_name }}``)
are written outside the notes: every sentence a reader gets is the therapist's own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nurture.campaigns import notes
from nurture.campaigns.article import Format, Section, parse_article
from nurture.campaigns.discretion import find_exposures
from nurture.campaigns.model import NEWSLETTERS
from nurture.campaigns.snippets import SNIPPETS
from nurture.exceptions import CampaignError
from nurture.settings import Settings

MAX_SUBJECT = 70
#: A quoted key point longer than this is cut at a word, with an ellipsis.
MAX_NOTE = 240
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_SENTENCE_END = re.compile(r"(?<=[.!?\u2026])[\"'\u201d\u2019)]*\s+(?=[\"'\u201c\u2018(]?[A-Z0-9])")
#: Words a label should not end on once it has been cut short.
_DANGLING = frozenset(
    {"a", "an", "and", "as", "at", "about", "be", "by", "for", "from", "her", "his", "how"}
    | {"if", "in", "into", "is", "are", "its", "my", "of", "on", "or", "our", "than", "that"}
    | {"the", "their", "this", "to", "what", "when", "who", "why", "with", "your"}
)


@dataclass(frozen=True)
class ScaffoldStep:
    """One drafted step: its file ``{slug}.md`` holds ``text``."""

    slug: str
    #: The article's heading for this section (``None``: a run of untitled paragraphs).
    heading: str | None
    subject: str
    preheader: str
    delay: str
    #: The key points, quoted from the article, as they stand on the ``> NOTE:`` lines.
    notes: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class Scaffold:
    """A drafted campaign: ``campaign.yaml`` and one step file per section."""

    slug: str
    name: str
    title: str
    url: str
    steps: tuple[ScaffoldStep, ...]
    campaign_yaml: str

    def files(self) -> dict[str, str]:
        """Each file's name in ``campaigns/SLUG/`` and its text."""
        return {"campaign.yaml": self.campaign_yaml} | {f"{s.slug}.md": s.text for s in self.steps}


def scaffold(
    article_text: str,
    *,
    slug: str,
    url: str,
    title: str | None = None,
    settings: Settings,
    fmt: Format = "auto",
) -> Scaffold:
    """Drafts a campaign from an article's text; raises :class:`CampaignError` when the
    slug, the URL or the article will not do (the message says why).

    ``title`` defaults to the article's own (its first heading or line). ``fmt`` says
    how to read the text: ``markdown``, ``text``, or ``auto`` (Markdown when a line
    starts with ``#``). The discretion list is the settings' (``DISCRETION_WORDS``).
    """
    where = str(Path(settings.campaigns_dir) / slug)
    if not _SLUG.match(slug) or slug in (NEWSLETTERS, SNIPPETS):
        message = (
            f"slug {slug!r}: use lowercase letters, digits, '-' and '_' "
            f"(not {NEWSLETTERS!r} or {SNIPPETS!r}); it is the folder's name and part of links"
        )
        raise CampaignError(message, path=where)
    if not re.match(r"^https://[^\s/]+\.[^\s/]+", url.strip()):
        raise CampaignError(f"the article's URL must be https://..., got {url!r}", path=where)
    article = parse_article(article_text, fmt)
    title = " ".join((title or article.title or "").split())
    if not title:
        raise CampaignError("the article has no title line: give one (--title)", path=where)
    sections = [s for s in article.sections if s.heading or s.paragraphs]
    if not sections:
        raise CampaignError("the article has no text to draft from", path=where)
    words = list(settings.discretion_words)
    total = len(sections)
    steps = tuple(
        _step(section, number, total, words) for number, section in enumerate(sections, 1)
    )
    name = _label(title, words) or slug.replace("-", " ").replace("_", " ").capitalize()
    yaml = _campaign_yaml(name.rstrip("\u2026"), title, url.strip(), settings, steps, words)
    return Scaffold(slug, name.rstrip("\u2026"), title, url.strip(), steps, yaml)


def write_scaffold(drafted: Scaffold, root: Path) -> Path:
    """Writes ``root/SLUG/`` in one step; raises :class:`CampaignError` when it exists.

    The files are written into a hidden folder beside it and renamed into place, so a
    service reloading ``campaigns/`` never sees half a campaign.
    """
    target = root / drafted.slug
    if target.exists():
        raise CampaignError(
            f"{target} already exists: choose another slug, or move it away", path=str(target)
        )
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{drafted.slug}.", dir=root))
    try:
        for name, text in drafted.files().items():
            (staging / name).write_text(text, encoding="utf-8")
        staging.chmod(0o755)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


# -- one step ------------------------------------------------------------------------


def _step(section: Section, number: int, total: int, words: Sequence[str]) -> ScaffoldStep:
    label = _label(section.heading, words) if section.heading else None
    slug = f"{number:02d}-{_slugify(label) or 'part'}"
    subject = _subject(number, label, words)
    series = f"Letter {number} of {total}"
    preheader = _discreet(f"{series} in this short series", words, series)
    delay = _delay(number)
    points = tuple(_key_point(p) for p in section.paragraphs)
    origin = (
        f'from the section "{section.heading}"'
        if section.heading
        else "from the article's paragraphs in order (it has no headings)"
    )
    guide = (
        f"Part {number} of {total}, {origin}. Rewrite the subject and preheader too, write "
        "this letter in your own words, then delete every NOTE line and 'draft: true'."
    )
    lines = [notes.note_line(guide), *(notes.note_line(f'"{p}"') for p in points)]
    front = [
        f"subject: {json.dumps(subject, ensure_ascii=False)}",
        f"preheader: {json.dumps(preheader, ensure_ascii=False)}",
        f"delay: {delay if delay == '0' else json.dumps(delay)}",
        "draft: true",
    ]
    body = "\n".join(["Hi {{ first_name }},", "", *lines, "", "{{ therapist_name }}"])
    text = "---\n" + "\n".join(front) + "\n---\n" + body + "\n"
    return ScaffoldStep(slug, section.heading, subject, preheader, delay, points, text)


def _delay(number: int) -> str:
    """0 for the first step (sent on confirming), then 2, 3, 3, 4, 4, ... days."""
    if number == 1:
        return "0"
    return "2 days" if number == 2 else "3 days" if number < 5 else "4 days"


def _subject(number: int, label: str | None, words: Sequence[str]) -> str:
    fallback = f"A note from the practice ({number})"
    if not label:
        return _discreet(fallback, words, f"Letter {number}")
    prefix = f"Part {number}: "
    kept = label.rstrip("\u2026").split()
    cut = label.endswith("\u2026")
    while kept and len(prefix + " ".join(kept) + ("\u2026" if cut else "")) > MAX_SUBJECT:
        kept.pop()
        cut = True
    while cut and kept and kept[-1].lower() in _DANGLING:
        kept.pop()
    if not kept:
        return _discreet(fallback, words, f"Letter {number}")
    return _discreet(prefix + " ".join(kept) + ("\u2026" if cut else ""), words, fallback)


def _label(text: str | None, words: Sequence[str]) -> str | None:
    """``text`` when discreet; else its words before the first listed one, ending in
    "…" (``None`` when fewer than two words would be left)."""
    if not text:
        return None
    tokens = text.split()
    for index, token in enumerate(tokens):
        if find_exposures(token, words):
            kept = tokens[:index]
            while kept and kept[-1].lower().strip(",;:") in _DANGLING:
                kept.pop()
            if len(kept) < 2:
                return None
            return " ".join(kept).rstrip(",;:-\u2014") + "\u2026"
    return " ".join(tokens)


def _discreet(text: str, words: Sequence[str], fallback: str) -> str:
    return fallback if find_exposures(text, words) else text


def _slugify(label: str | None) -> str:
    if not label:
        return ""
    plain = label.lower().replace("\u2019", "").replace("'", "")
    return "-".join(re.findall(r"[a-z0-9]+", plain)[:6])


def _key_point(paragraph: str) -> str:
    """The paragraph's first sentence, word for word (cut at a word when very long)."""
    first = _SENTENCE_END.split(paragraph.strip(), maxsplit=1)[0].strip()
    if len(first) <= MAX_NOTE:
        return first
    return first[:MAX_NOTE].rsplit(" ", 1)[0].rstrip(",;:") + "\u2026"


def _campaign_yaml(
    name: str,
    title: str,
    url: str,
    settings: Settings,
    steps: Sequence[ScaffoldStep],
    words: Sequence[str],
) -> str:
    lines = [
        "# Drafted by `nurture new-campaign` from the article below. Each step is a draft",
        "# (never sent) holding the article's key points as '> NOTE:' lines: write each",
        "# letter in your own words, delete its notes and its 'draft: true', then run",
        "# `nurture check`.",
        f"name: {json.dumps(name, ensure_ascii=False)}",
        "article:",
        f"  title: {json.dumps(title, ensure_ascii=False)}",
        f"  url: {url}",
    ]
    sender = settings.therapist_name.strip()
    if sender and not find_exposures(sender, words) and not re.search(r"[;,\r\n]", sender):
        lines.append(f"from_name: {json.dumps(sender, ensure_ascii=False)}")
    lines += ["first_name_fallback: there", "steps:", *(f"  - {s.slug}" for s in steps)]
    return "\n".join(lines) + "\n"
