"""What the therapist's campaign files say, as plain immutable values.

A :class:`Catalogue` holds every sequence (:class:`Campaign` with its :class:`Step`
files) and every :class:`Newsletter`. Newsletters are addressed like a campaign named
``"newsletters"`` whose steps are the newsletter slugs, so the outbox, rendering and
stats can treat both the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from nurture.campaigns.snippets import Snippet
from nurture.exceptions import CampaignError
from nurture.mail.messages import Sender

if TYPE_CHECKING:
    from nurture.settings import Settings

#: The pseudo-campaign under which newsletters are addressed (and their folder's name).
NEWSLETTERS = "newsletters"
#: What ``first_name`` becomes in a newsletter for a subscriber who gave no name.
DEFAULT_FIRST_NAME_FALLBACK = "there"


@dataclass(frozen=True)
class Step:
    """One email of a sequence: ``NN-slug.md``.

    ``delay`` is the wait after the previous step was sent (for the first step: after
    confirmation). ``body`` is the Markdown + Jinja source, starting at ``body_line``
    (1-based) of ``path``.
    """

    slug: str
    subject: str
    preheader: str
    delay: timedelta
    body: str
    path: Path
    body_line: int
    #: A draft is previewed and test-sent, never sent: the sequence skips it.
    draft: bool = False
    #: Weekdays (Monday 0) this step may go out on; ``None``: the campaign's rule.
    send_days: frozenset[int] | None = None


@dataclass(frozen=True)
class Campaign:
    """One sequence, drawn from one article: ``campaigns/<slug>/campaign.yaml``."""

    slug: str
    name: str
    article_title: str
    article_url: str
    from_name: str
    first_name_fallback: str
    send_window: tuple[time, time] | None
    steps: tuple[Step, ...]
    path: Path
    #: Extra words for the discretion check, on top of the settings' list.
    discretion_words: tuple[str, ...] = field(default=())
    #: ``archive: true``: the steps are public web pages under ``/archive`` too.
    archive: bool = False
    #: Draft steps (``draft: true``), kept out of ``steps``: no reader is ever sent one.
    drafts: tuple[Step, ...] = field(default=())
    #: Every step slug in the order of ``campaign.yaml``, drafts included.
    order: tuple[str, ...] = field(default=())
    #: Weekdays (Monday 0) the sequence may go out on; ``None``: every day.
    send_days: frozenset[int] | None = None
    #: Evergreen: readers who reached the end stay enrolled and get steps added later.
    hold: bool = False
    #: Events that end the sequence for a reader (``booked``).
    stop_when: frozenset[str] = field(default=frozenset())

    def position_after(self, last_step: str | None, had: int) -> int:
        """Where a reader goes next: just after the last step they were sent, found by
        name, so steps removed or inserted before it move nobody back or forward (an
        inserted one is skipped: it was never theirs to get). Without that step in the
        list (none sent yet, or it was removed) their count of steps had decides."""
        if last_step is not None:
            for index, step in enumerate(self.steps):
                if step.slug == last_step:
                    return index + 1
        return had

    def outline(self) -> tuple[Step, ...]:
        """Every step, drafts included, in the order of ``campaign.yaml``."""
        by_slug = {s.slug: s for s in (*self.steps, *self.drafts)}
        if not self.order:
            return (*self.steps, *self.drafts)
        return tuple(by_slug[slug] for slug in self.order if slug in by_slug)

    def days_for(self, step: Step) -> frozenset[int] | None:
        """The weekdays ``step`` may go out on: its own rule, else the campaign's."""
        return step.send_days if step.send_days is not None else self.send_days

    def step(self, slug: str) -> Step:
        """The step with that slug, a draft too (preview, test send); raises
        :class:`CampaignError` when there is none."""
        for step in (*self.steps, *self.drafts):
            if step.slug == slug:
                return step
        raise CampaignError(f"campaign {self.slug!r} has no step {slug!r}", path=str(self.path))

    def index_of(self, slug: str) -> int:
        """The 0-based position of a step; raises :class:`CampaignError` when unknown."""
        for index, step in enumerate(self.steps):
            if step.slug == slug:
                return index
        raise CampaignError(f"campaign {self.slug!r} has no step {slug!r}", path=str(self.path))


@dataclass(frozen=True)
class Newsletter:
    """One newsletter file; ``send_at`` and ``not_after`` are aware UTC datetimes."""

    slug: str
    subject: str
    preheader: str
    send_at: datetime
    not_after: datetime | None
    body: str
    path: Path
    body_line: int


@dataclass(frozen=True)
class Catalogue:
    """Every campaign and newsletter, by slug. Load it with ``load_catalogue``."""

    campaigns: dict[str, Campaign]
    newsletters: dict[str, Newsletter]
    #: The folder they were read from (for messages).
    root: Path = field(default=Path("campaigns"))
    #: The shared blocks of ``campaigns/snippets/``, by name (``{{ snippet.NAME }}``),
    #: carried here so that a reloaded catalogue renders with the snippets' new text.
    snippets: dict[str, Snippet] = field(default_factory=dict)

    def campaign(self, slug: str) -> Campaign:
        """The campaign; raises :class:`CampaignError` when unknown."""
        try:
            return self.campaigns[slug]
        except KeyError:
            raise CampaignError(f"no campaign {slug!r}", path=str(self.root / slug)) from None

    def newsletter(self, slug: str) -> Newsletter:
        """The newsletter; raises :class:`CampaignError` when unknown."""
        try:
            return self.newsletters[slug]
        except KeyError:
            raise CampaignError(
                f"no newsletter {slug!r}", path=str(self.root / NEWSLETTERS)
            ) from None

    def content_for(self, campaign: str, step: str) -> Step | Newsletter:
        """The step, or the newsletter when ``campaign`` is ``"newsletters"``."""
        if campaign == NEWSLETTERS:
            return self.newsletter(step)
        return self.campaign(campaign).step(step)

    def step_slugs(self, campaign: str) -> list[str]:
        """The steps of a campaign in order, or every newsletter slug for ``"newsletters"``."""
        if campaign == NEWSLETTERS:
            return list(self.newsletters)
        return [step.slug for step in self.campaign(campaign).steps]

    # The sender and first-name rules live here, once: the real send (composing), the
    # test send (CLI), the preview (files and web) and the check all ask the catalogue.

    def first_name_fallback(self, campaign: str) -> str:
        """What ``first_name`` becomes for a subscriber who gave no name.

        The campaign's ``first_name_fallback``; :data:`DEFAULT_FIRST_NAME_FALLBACK` for
        newsletters and for a campaign no longer in the files (a queued confirmation may
        still name one), so sending never fails on it.
        """
        found = self.campaigns.get(campaign)
        return found.first_name_fallback if found is not None else DEFAULT_FIRST_NAME_FALLBACK

    def from_name(self, campaign: str, default: str) -> str:
        """The From name of a campaign's mail: its own ``from_name``, else ``default``.

        ``default`` is the practice's name (``NURTURE_FROM_NAME``); newsletters, and a
        campaign no longer in the files, use it too.
        """
        found = self.campaigns.get(campaign)
        return found.from_name if found is not None and found.from_name else default

    def sender(self, campaign: str, settings: Settings) -> Sender:
        """The From and Reply-To that a campaign's mail goes out with."""
        name = self.from_name(campaign, settings.from_name)
        return Sender(settings.from_email, name, settings.reply_to)
