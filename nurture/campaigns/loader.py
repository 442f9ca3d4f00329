"""Reads ``campaigns/`` into a :class:`~nurture.campaigns.model.Catalogue`.

:func:`read_catalogue` reads everything it can and records every structural problem
(YAML syntax, unknown or missing keys, bad delays and dates, steps listed but missing
or present but unlisted), so ``nurture check`` can report all of them in one pass.
:func:`load_catalogue` is what the service uses: it raises on the first error.
Content checks (subjects, links, variables, discretion) live in ``check``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from nurture.campaigns.days import parse_send_days
from nurture.campaigns.documents import (
    Document,
    FrontMatterFile,
    YamlSyntaxError,
    parse_yaml,
    split_front_matter,
)
from nurture.campaigns.model import (
    DEFAULT_FIRST_NAME_FALLBACK,
    NEWSLETTERS,
    Campaign,
    Catalogue,
    Newsletter,
    Step,
)
from nurture.campaigns.problems import Problems
from nurture.campaigns.snippets import SNIPPETS, Snippet, read_snippets
from nurture.exceptions import CampaignError
from nurture.settings import Settings, parse_window

CAMPAIGN_FILE = "campaign.yaml"
CAMPAIGN_KEYS = frozenset(
    {"name", "article", "from_name", "first_name_fallback", "send_window"}
    | {"discretion_words", "steps", "send_days", "hold", "stop_when", "archive"}
)
#: The events a campaign may stop on (``stop_when``).
STOP_EVENTS = frozenset({"booked"})
ARTICLE_KEYS = frozenset({"title", "url"})
STEP_KEYS = frozenset({"subject", "preheader", "delay", "draft", "send_days"})
NEWSLETTER_KEYS = frozenset({"subject", "preheader", "send_at", "not_after"})

_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$", re.IGNORECASE)
_UNITS = {
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), "minutes"),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), "hours"),
    **dict.fromkeys(("d", "day", "days"), "days"),
    **dict.fromkeys(("w", "week", "weeks"), "weeks"),
}
_LOCAL_TIME = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")


def parse_delay(value: object) -> timedelta:
    """``0``, ``"2 days"``, ``"36 hours"``, ``"2d"``, ``"12h"`` -> a timedelta.

    Raises ``ValueError`` for anything else, including a bare non-zero number (is
    ``2`` hours or days?) and negative values.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a delay such as '2 days', got {value!r}")
    if isinstance(value, int | float) and value == 0:
        return timedelta(0)
    if isinstance(value, str):
        if value.strip() == "0":
            return timedelta(0)
        match = _DELAY.match(value)
        if match and match.group(2).lower() in _UNITS:
            return timedelta(**{_UNITS[match.group(2).lower()]: float(match.group(1))})
    raise ValueError(f"bad delay {value!r}: use 0, '2 days', '36 hours', '30 minutes' or '1 week'")


def parse_local_datetime(value: object, zone: ZoneInfo) -> datetime:
    """``"2026-12-08 09:00"`` in the practice's zone -> an aware UTC datetime."""
    if isinstance(value, datetime):
        local = value if value.tzinfo else value.replace(tzinfo=zone)
        return local.astimezone(UTC)
    if isinstance(value, date):
        raise ValueError(f"{value} has no time: use 'YYYY-MM-DD HH:MM'")
    match = _LOCAL_TIME.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"expected 'YYYY-MM-DD HH:MM' (practice time), got {value!r}")
    year, month, day, hour, minute = (int(g) for g in match.groups()[:5])
    second = int(match.group(6) or 0)
    local = datetime(year, month, day, hour, minute, second, tzinfo=zone)
    return local.astimezone(UTC)


def load_catalogue(settings: Settings) -> Catalogue:
    """Reads every campaign and newsletter; raises :class:`CampaignError` on the first error.

    Warnings are ignored here (``nurture check`` shows them). Nothing is cached: call it
    again to pick up edited files.
    """
    problems = Problems()
    catalogue = read_catalogue(settings, problems)
    errors = problems.errors
    if errors:
        first = errors[0]
        raise CampaignError(first.message, path=first.path, line=first.line)
    return catalogue


def read_catalogue(settings: Settings, problems: Problems) -> Catalogue:
    """Reads what it can, recording every structural problem in ``problems``.

    The catalogue returned may hold incomplete entries when there were errors; only
    use it for further checks in that case.
    """
    root = Path(settings.campaigns_dir)
    campaigns: dict[str, Campaign] = {}
    newsletters: dict[str, Newsletter] = {}
    snippets: dict[str, Snippet] = {}
    if not root.is_dir():
        problems.error(root, 1, "campaigns folder not found")
        return Catalogue(campaigns, newsletters, root)
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name.startswith((".", "_")):
            continue
        if folder.name == NEWSLETTERS:
            for path in sorted(folder.glob("*.md")):
                newsletter = _read_newsletter(path, settings.zone, problems)
                if newsletter is not None:
                    newsletters[newsletter.slug] = newsletter
            continue
        if folder.name == SNIPPETS:  # shared blocks, {{ snippet.NAME }}: see .snippets
            snippets = read_snippets(folder, problems)
            continue
        campaign = _read_campaign(folder, problems)
        if campaign is not None:
            campaigns[campaign.slug] = campaign
    return Catalogue(campaigns, newsletters, root, snippets=snippets)


def _read_campaign(folder: Path, problems: Problems) -> Campaign | None:
    path = folder / CAMPAIGN_FILE
    if not _SLUG.match(folder.name):
        problems.error(folder, 1, "folder names may only use letters, digits, '-' and '_'")
    if not path.is_file():
        problems.error(folder, 1, f"campaign folder without {CAMPAIGN_FILE}")
        return None
    try:
        doc = parse_yaml(path.read_text(encoding="utf-8"))
    except YamlSyntaxError as exc:
        problems.error(path, exc.line, exc.message)
        return None
    if not isinstance(doc.data, dict):
        problems.error(path, 1, f"{CAMPAIGN_FILE} must be a mapping of keys to values")
        return None
    data: dict[str, Any] = doc.data
    _unknown_keys(doc, CAMPAIGN_KEYS, path, problems)
    name = _text(doc, "name", path, problems, required=True)
    article_title, article_url = _article(doc, path, problems)
    from_name = _text(doc, "from_name", path, problems)
    if any(ch in from_name for ch in ";,\r\n"):
        problems.error(path, doc.line_of("from_name"), "from_name must not contain ';' or ','")
    fallback = _text(doc, "first_name_fallback", path, problems) or DEFAULT_FIRST_NAME_FALLBACK
    window = None
    if "send_window" in data:
        try:
            window = parse_window(str(data["send_window"]))
        except ValueError as exc:
            problems.error(path, doc.line_of("send_window"), f"send_window: {exc}")
    words = data.get("discretion_words") or []
    if not isinstance(words, list) or not all(isinstance(w, str) and w.strip() for w in words):
        problems.error(path, doc.line_of("discretion_words"), "discretion_words must be a list")
        words = []
    steps = _read_steps(folder, doc, problems)
    send_days = _send_days(doc, path, problems)
    hold = _flag(doc, "hold", path, problems)
    stop_when = _stop_when(doc, path, problems)
    return Campaign(
        slug=folder.name,
        name=name,
        article_title=article_title,
        article_url=article_url,
        from_name=from_name,
        first_name_fallback=fallback,
        send_window=window,
        steps=tuple(s for s in steps if not s.draft),
        path=path,
        discretion_words=tuple(w.strip() for w in words),
        drafts=tuple(s for s in steps if s.draft),
        order=tuple(s.slug for s in steps),
        send_days=send_days,
        hold=hold,
        stop_when=stop_when,
        archive=_flag(doc, "archive", path, problems),
    )


def _send_days(doc: Document, path: Path, problems: Problems) -> frozenset[int] | None:
    if doc.data.get("send_days") is None:
        return None
    try:
        return parse_send_days(doc.data["send_days"])
    except ValueError as exc:
        problems.error(path, doc.line_of("send_days"), f"send_days: {exc}")
        return None


def _flag(doc: Document, key: str, path: Path, problems: Problems) -> bool:
    value = doc.data.get(key, False)
    if not isinstance(value, bool):
        problems.error(path, doc.line_of(key), f"{key} must be true or false")
        return False
    return value


def _stop_when(doc: Document, path: Path, problems: Problems) -> frozenset[str]:
    value = doc.data.get("stop_when") or []
    events = [value] if isinstance(value, str) else value
    if not isinstance(events, list) or any(e not in STOP_EVENTS for e in events):
        known = ", ".join(sorted(STOP_EVENTS))
        problems.error(path, doc.line_of("stop_when"), f"stop_when lists events from: {known}")
        return frozenset()
    return frozenset(events)


def _article(doc: Document, path: Path, problems: Problems) -> tuple[str, str]:
    article = doc.data.get("article")
    line = doc.line_of("article")
    if not isinstance(article, dict):
        problems.error(path, line, "missing article: give its title and url")
        return "", ""
    lines = doc.nested_key_lines.get("article", {})
    for key in article:
        if key not in ARTICLE_KEYS:
            problems.error(path, lines.get(str(key), line), f"unknown key 'article.{key}'")
    title, url = article.get("title"), article.get("url")
    if not isinstance(title, str) or not title.strip():
        problems.error(path, lines.get("title", line), "missing article.title")
        title = ""
    if not isinstance(url, str) or not re.match(r"^https://[^\s/]+", url):
        problems.error(path, lines.get("url", line), "article.url must be an https:// URL")
        url = ""
    return title.strip(), url.strip()


def _read_steps(folder: Path, doc: Document, problems: Problems) -> list[Step]:
    path = folder / CAMPAIGN_FILE
    listed = doc.data.get("steps")
    if not isinstance(listed, list) or not listed:
        problems.error(path, doc.line_of("steps"), "steps must list the step files in order")
        listed = []
    item_lines = doc.item_lines.get("steps", [])
    files = {p.stem: p for p in folder.glob("*.md")}
    steps: list[Step] = []
    seen: set[str] = set()
    for index, slug in enumerate(listed):
        line = item_lines[index] if index < len(item_lines) else doc.line_of("steps")
        if not isinstance(slug, str):
            problems.error(path, line, f"step {slug!r} must be a file name without '.md'")
            continue
        slug = slug.removesuffix(".md")
        if slug in seen:
            problems.error(path, line, f"step {slug!r} is listed twice")
            continue
        seen.add(slug)
        if slug not in files:
            problems.error(path, line, f"step {slug!r} is listed but {slug}.md does not exist")
            continue
        step = _read_step(files[slug], first=not steps, problems=problems)
        if step is not None:
            steps.append(step)
    for stem, file in sorted(files.items()):
        if stem not in seen:
            problems.error(file, 1, f"{file.name} is not listed in {CAMPAIGN_FILE} steps")
    return steps


def _read_front(
    path: Path, keys: frozenset[str], problems: Problems
) -> tuple[FrontMatterFile, Document, str, str] | None:
    """The parts every email file shares: (parsed file, front matter, subject, preheader)."""
    if not _SLUG.match(path.stem):
        problems.error(path, 1, "file names may only use letters, digits, '-' and '_'")
    try:
        parsed = split_front_matter(path.read_text(encoding="utf-8"))
    except YamlSyntaxError as exc:
        problems.error(path, exc.line, exc.message)
        return None
    doc = parsed.front
    if not isinstance(doc.data, dict):
        problems.error(path, 1, "front matter must be a mapping of keys to values")
        return None
    _unknown_keys(doc, keys, path, problems)
    subject = _text(doc, "subject", path, problems, required=True)
    preheader = _text(doc, "preheader", path, problems)
    return parsed, doc, subject, preheader


def _read_step(path: Path, *, first: bool, problems: Problems) -> Step | None:
    front = _read_front(path, STEP_KEYS, problems)
    if front is None:
        return None
    parsed, doc, subject, preheader = front
    delay = timedelta(0)
    if "delay" in doc.data:
        try:
            delay = parse_delay(doc.data["delay"])
        except ValueError as exc:
            problems.error(path, doc.line_of("delay"), str(exc))
    elif not first:
        message = "missing delay: how long after the previous step, e.g. '2 days'"
        problems.error(path, doc.line, message)
    draft = _flag(doc, "draft", path, problems)
    return Step(
        path.stem,
        subject,
        preheader,
        delay,
        parsed.body,
        path,
        parsed.body_line,
        draft=draft,
        send_days=_send_days(doc, path, problems),
    )


def _read_newsletter(path: Path, zone: ZoneInfo, problems: Problems) -> Newsletter | None:
    front = _read_front(path, NEWSLETTER_KEYS, problems)
    if front is None:
        return None
    parsed, doc, subject, preheader = front
    send_at = datetime.min.replace(tzinfo=UTC)
    if "send_at" not in doc.data:
        message = "missing send_at: 'YYYY-MM-DD HH:MM' in the practice's time"
        problems.error(path, doc.line, message)
    else:
        try:
            send_at = parse_local_datetime(doc.data["send_at"], zone)
        except ValueError as exc:
            problems.error(path, doc.line_of("send_at"), f"send_at: {exc}")
    not_after = None
    if doc.data.get("not_after") is not None:
        try:
            not_after = parse_local_datetime(doc.data["not_after"], zone)
        except ValueError as exc:
            problems.error(path, doc.line_of("not_after"), f"not_after: {exc}")
        else:
            if "send_at" in doc.data and not_after <= send_at:
                problems.error(path, doc.line_of("not_after"), "not_after must be after send_at")
    return Newsletter(
        path.stem, subject, preheader, send_at, not_after, parsed.body, path, parsed.body_line
    )


def _unknown_keys(doc: Document, known: frozenset[str], path: Path, problems: Problems) -> None:
    for key in doc.data:
        if str(key) not in known:
            expected = ", ".join(sorted(known))
            problems.error(
                path, doc.line_of(str(key)), f"unknown key {key!r} (expected: {expected})"
            )


def _text(
    doc: Document, key: str, path: Path, problems: Problems, *, required: bool = False
) -> str:
    value = doc.data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            problems.error(path, doc.line_of(key), f"missing {key}")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        problems.error(path, doc.line_of(key), f"{key} must be text")
        return ""
    return str(value).strip()
