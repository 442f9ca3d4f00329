"""Composing a batch: a step's compiled content, its sender, and each recipient's part.

The dispatcher (:mod:`nurture.delivery.dispatch`) composes every batch it sends here.
The sender and first-name fallback come from the catalogue
(:meth:`~nurture.campaigns.Catalogue.sender`), as in the preview and the test send, so
all three build the same message.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from nurture.campaigns import Catalogue
from nurture.mail.messages import Content, Recipient, Sender
from nurture.mail.recipients import RecipientFactory
from nurture.rendering import Renderer
from nurture.settings import Settings
from nurture.store.outbox import Claimed
from nurture.store.statuses import OutboxKind

Group = tuple[str, str, str]  # (kind, campaign, step)


class Composer:
    """Builds batches from taken outbox rows; compiles each step once (the renderer caches)."""

    def __init__(
        self,
        settings: Settings,
        catalogue: Catalogue,
        renderer: Renderer,
        recipients: RecipientFactory,
    ) -> None:
        self.settings = settings
        self.catalogue = catalogue
        self.renderer = renderer
        self.recipients = recipients

    def links_wanted(self, now: datetime) -> tuple[str, datetime]:
        """What ``outbox.take`` needs to hand back each subscriber's links signed ahead
        of time (:mod:`nurture.delivery.presigning`) that may still go into an email."""
        tokens = self.recipients.tokens
        return tokens.link_key, tokens.links_reusable_since(now)

    def content(self, group: Group) -> tuple[Content, Sender, str]:
        """(compiled content, sender, first-name fallback); raises NurtureError when broken."""
        kind, campaign, step = group
        if kind == OutboxKind.CONFIRMATION:
            content = self.renderer.compile_confirmation(campaign)
        else:
            content = self.renderer.compile(campaign, step)
        sender = self.catalogue.sender(campaign, self.settings)
        return content, sender, self.catalogue.first_name_fallback(campaign)

    def recipient(self, row: Claimed, fallback: str, now: datetime) -> Recipient:
        assert row.email is not None and row.public_id is not None
        if row.kind == OutboxKind.CONFIRMATION:
            # Not personalised: the name was typed by whoever filled the form, and until
            # the address is confirmed that may be a stranger putting words in our mouth.
            return self.recipients.confirmation(
                email=row.email, public_id=row.public_id, first_name=None, outbox_id=row.id, now=now
            )
        return self.recipients.marketing(
            email=row.email,
            public_id=row.public_id,
            first_name=row.first_name,
            fallback=fallback,
            outbox_id=row.id,
            now=now,
        )

    def recipients_for(
        self, group: Group, rows: Sequence[Claimed], fallback: str, now: datetime
    ) -> list[Recipient]:
        """Each row's :class:`Recipient`; a marketing batch's are made in one pass."""
        if group[0] == OutboxKind.CONFIRMATION:
            return [self.recipient(row, fallback, now) for row in rows]
        # Rows that passed checks.sort have a subscriber: their email and public_id are set.
        people = [(r.email, r.public_id, r.first_name, r.id, r.links) for r in rows]
        return self.recipients.marketing_batch(people, fallback=fallback, now=now)  # type: ignore[arg-type]
