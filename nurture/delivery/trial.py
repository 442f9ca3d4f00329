"""Test sends: one email, now, to the therapist's own address, with working links.

A test email goes straight to the provider (no outbox row, no subscriber): its
subject says ``[TEST]``, and its unsubscribe and preference links are real, signed
links for :data:`TRIAL_PUBLIC_ID`, a reader who never joins the list. The pages behind
them show what a reader would see and change nothing (see ``nurture.web.trial``).
"""

from __future__ import annotations

from datetime import datetime

from nurture.campaigns.model import Catalogue
from nurture.mail.messages import Batch
from nurture.mail.recipients import RecipientFactory
from nurture.mail.tokens import Tokens
from nurture.providers.base import Provider, SendResult
from nurture.rendering import Renderer
from nurture.settings import Settings

#: The public id of the test reader. Real ids are 22 random characters, so no
#: subscriber can ever have this one.
TRIAL_PUBLIC_ID = "studio-test-send"
SUBJECT_PREFIX = "[TEST] "


def send_trial(
    settings: Settings,
    catalogue: Catalogue,
    provider: Provider,
    campaign: str,
    step: str,
    to: str,
    *,
    now: datetime | None = None,
) -> list[SendResult]:
    """Sends ``campaign``/``step`` (``"newsletters"``/slug for a newsletter) to ``to``.

    Raises :class:`~nurture.exceptions.NurtureError` when the email does not render.
    """
    content = Renderer(settings, catalogue).compile(campaign, step)
    recipient = RecipientFactory(settings, Tokens.from_settings(settings)).marketing(
        email=to,
        public_id=TRIAL_PUBLIC_ID,
        first_name=None,
        fallback=catalogue.first_name_fallback(campaign),
        outbox_id=None,
        now=now,
    )
    sender = catalogue.sender(campaign, settings)
    return provider.send(Batch(content, sender, [recipient], subject_prefix=SUBJECT_PREFIX))
