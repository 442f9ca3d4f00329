"""An email as the therapist is writing it: the file it would become, and its preview.

Both the live preview (as she types) and the save go through
:func:`nurture.campaigns.publishing.review`, so what the preview warns about is exactly
what a save would refuse. The preview renders the email with the real renderer, for
the same sample reader as ``/preview`` and ``nurture preview``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nurture.campaigns import publishing
from nurture.campaigns.documents import YamlSyntaxError, split_front_matter
from nurture.campaigns.problems import Problem
from nurture.campaigns.writer import email_file
from nurture.exceptions import NurtureError
from nurture.rendering import Renderer
from nurture.rendering.preview import sample_recipient
from nurture.settings import Settings

#: The fields of a sequence step and of a newsletter, as the forms name them.
STEP_FIELDS = ("subject", "preheader", "delay")
NEWSLETTER_FIELDS = ("subject", "preheader", "send_at", "not_after")


@dataclass(frozen=True)
class Draft:
    """One email file as a form describes it."""

    path: Path
    values: dict[str, str]
    body: str
    previous: str | None = None

    def text(self) -> str:
        """The file's text: front matter keys in place, hand-written formatting kept."""
        values: dict[str, str | None] = {k: (v.strip() or None) for k, v in self.values.items()}
        return email_file(values, self.body, previous=self.previous)

    def change(self, base: str | None) -> publishing.Change:
        return publishing.Change(self.path, self.text(), base)


@dataclass
class Preview:
    """What the studio shows beside the fields."""

    subject: str
    preheader: str
    from_name: str
    html: str | None = None
    text: str | None = None
    error: str | None = None
    problems: list[Problem] = field(default_factory=list)
    blocking: list[Problem] = field(default_factory=list)

    def as_json(self, body_line: int) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "preheader": self.preheader,
            "from_name": self.from_name,
            "html": self.html,
            "text": self.text,
            "error": self.error,
            "problems": [problem_json(p, body_line) for p in self.problems],
            "blocking": len(self.blocking),
        }


def from_fields(path: Path, fields: dict[str, str], names: tuple[str, ...]) -> Draft:
    """A draft of the file at ``path`` from a posted form (the file's other keys stay)."""
    previous = publishing.current_text(path)
    values = {name: fields.get(name, "").replace("\r", " ").replace("\n", " ") for name in names}
    return Draft(path, values, fields.get("body", ""), previous)


def from_file(path: Path, names: tuple[str, ...]) -> tuple[Draft, int]:
    """The draft as the file is now, and the line its body starts on."""
    text = publishing.current_text(path) or ""
    try:
        parsed = split_front_matter(text)
    except YamlSyntaxError:
        return Draft(path, dict.fromkeys(names, ""), text, text), 1
    data = parsed.front.data if isinstance(parsed.front.data, dict) else {}
    values = {n: "" if data.get(n) is None else str(data.get(n)) for n in names}
    return Draft(path, values, parsed.body, text), parsed.body_line


def body_line(draft: Draft) -> int:
    """The line of the file where the draft's body starts."""
    try:
        return split_front_matter(draft.text()).body_line
    except YamlSyntaxError:
        return 1


def preview(
    settings: Settings, campaign: str, slug: str, draft: Draft, *, extra: list[publishing.Change]
) -> Preview:
    """Checks and renders ``draft`` as email ``campaign``/``slug`` (with ``extra`` changes
    applied too, e.g. the ``campaign.yaml`` that lists a new step)."""
    result = publishing.review(settings, [draft.change(None), *extra])
    catalogue = result.catalogue
    values = draft.values
    mine = [p for p in result.problems if p.path == str(draft.path)]
    view = Preview(
        subject=values.get("subject", "").strip(),
        preheader=values.get("preheader", "").strip(),
        from_name=catalogue.from_name(campaign, settings.from_name) if catalogue else "",
        problems=mine + [p for p in result.blocking if p not in mine],
        blocking=result.blocking,
    )
    if catalogue is None:
        view.error = "The files could not be read."
        return view
    try:
        content = Renderer(settings, catalogue).compile(campaign, slug)
    except NurtureError as exc:
        view.error = str(exc.context.get("detail") or exc.message)
        return view
    recipient = sample_recipient(settings, fallback=catalogue.first_name_fallback(campaign))
    view.html, view.text = content.personalise(recipient.values)
    return view


def problem_json(problem: Problem, body_line: int) -> dict[str, Any]:
    """A problem for the page: its message, and where (a field, or a line of the body)."""
    return {
        "message": problem.message,
        "severity": problem.severity,
        "line": problem.line,
        "body_line": problem.line - body_line + 1 if problem.line >= body_line else None,
        "field": _field_of(problem.message),
        "file": Path(problem.path).name,
    }


def _field_of(message: str) -> str | None:
    lowered = message.lower()
    for name in ("subject", "preheader", "delay", "send_at", "not_after"):
        if (
            lowered.startswith(name)
            or f" {name} " in f" {lowered} "
            or f"missing {name}" in lowered
        ):
            return name
    if lowered.startswith("from name"):
        return "from_name"
    return None
