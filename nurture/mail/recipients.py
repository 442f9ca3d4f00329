"""The per-recipient part of an email: personal values, link tokens, list headers.

Rendering compiles a step once; everything that differs between two recipients of a
batch is built here, once per recipient, so this sits on the hot path of a newsletter
to a million people: two tokens and a few dicts, nothing else. No URL or header built
here holds the recipient's address or any part of it, only signed opaque tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from email.utils import parseaddr

from nurture.mail.messages import Recipient
from nurture.mail.tokens import LINKS, Tokens
from nurture.settings import Settings

_MAILTO = re.compile(r"unsubscribe\+([A-Za-z0-9._-]+)@[^@\s]+", re.IGNORECASE)

#: RFC 8058: the body a one-click POST carries, announced by this header.
ONE_CLICK = "List-Unsubscribe=One-Click"


def tidy_spaces(text: str) -> str:
    """``text`` with every run of white space made one space and the ends stripped."""
    return " ".join(text.split())


def first_name_value(name: str | None, fallback: str) -> str:
    """The value of ``first_name`` in an email: the name tidied, or ``fallback``.

    The one rule for every greeting (the email sent, the test send, the preview): white
    space tidied by :func:`tidy_spaces`, as
    :func:`~nurture.subscriptions.validation.clean_first_name` tidies a name before it
    is stored, so a row written before that rule still greets the same everywhere.
    """
    return tidy_spaces(name or "") or fallback


class RecipientFactory:
    """Builds :class:`~nurture.mail.messages.Recipient` objects for marketing and confirmation."""

    def __init__(self, settings: Settings, tokens: Tokens) -> None:
        self.tokens = tokens
        base = settings.base_url.rstrip("/")
        # Prefixes joined once: per recipient only the token is appended.
        self._unsubscribe = f"{base}/unsubscribe/"
        self._preferences = f"{base}/preferences/"
        self._confirm = f"{base}/confirm/"
        self._mailto_domain = settings.unsubscribe_domain

    def marketing(
        self,
        *,
        email: str,
        public_id: str,
        first_name: str | None,
        fallback: str,
        outbox_id: int | None,
        now: datetime | None = None,
    ) -> Recipient:
        """A recipient of a sequence step or newsletter, with both unsubscribe headers.

        ``fallback`` replaces an empty first name ("there" in "Hi there"); ``outbox_id``
        travels in ``custom_args`` so that the provider's webhook events name the row.
        """
        people = [(email, public_id, first_name, outbox_id, None)]
        return self.marketing_batch(people, fallback=fallback, now=now)[0]

    def marketing_batch(
        self,
        people: Iterable[tuple[str, str, str | None, int | None, str | None]],
        *,
        fallback: str,
        now: datetime | None = None,
    ) -> list[Recipient]:
        """:meth:`marketing` for each (email, public_id, first_name, outbox_id, links), at
        ``now``.

        ``links`` are the person's "UNSUBSCRIBE PREFERENCES" tokens signed ahead of time
        (:mod:`nurture.delivery.presigning`), already checked to be good to use, or
        ``None``. Without them, a batch's recipients share the instant their links are
        signed at, so the signing is set up once
        (:meth:`~nurture.mail.tokens.Tokens.signing`) and the loop below is all that a
        million recipients pay for.
        """
        sign = self.tokens.signing(LINKS, now=now)
        unsubscribe, preferences = self._unsubscribe, self._preferences
        mailto = "@" + self._mailto_domain + ">"
        made = []
        for email, public_id, first_name, outbox_id, links in people:
            # Tokens begin with the public id they are for: a check that costs nothing.
            if links is not None and links.startswith(public_id + "."):
                unsubscribe_token, _, preferences_token = links.partition(" ")  # tokens.LINKS
            else:
                unsubscribe_token, preferences_token = sign(public_id)
            unsubscribe_url = unsubscribe + unsubscribe_token
            made.append(
                Recipient(
                    email,
                    {
                        "first_name": first_name_value(first_name, fallback),
                        "unsubscribe_url": unsubscribe_url,
                        "preferences_url": preferences + preferences_token,
                    },
                    {
                        "List-Unsubscribe": (
                            f"<{unsubscribe_url}>, <mailto:unsubscribe+{unsubscribe_token}{mailto}"
                        ),
                        "List-Unsubscribe-Post": ONE_CLICK,
                    },
                    {} if outbox_id is None else {"outbox_id": str(outbox_id)},
                    outbox_id,
                )
            )
        return made

    def confirmation(
        self,
        *,
        email: str,
        public_id: str,
        first_name: str | None,
        fallback: str = "there",
        outbox_id: int | None = None,
        now: datetime | None = None,
    ) -> Recipient:
        """The recipient of a confirmation email: a confirm link and no list headers.

        The confirmation is transactional (RFC 8058 headers belong to marketing mail
        only); its link expires after ``confirm_token_days``.
        """
        return Recipient(
            email=email,
            values={
                "first_name": first_name_value(first_name, fallback),
                "confirm_url": self._confirm + self.tokens.make("confirm", public_id, now=now),
            },
            custom_args={} if outbox_id is None else {"outbox_id": str(outbox_id)},
            outbox_id=outbox_id,
        )


def parse_unsubscribe_mailto(address: str) -> str | None:
    """The token of an ``unsubscribe+TOKEN@domain`` address, or ``None`` for any other.

    Accepts what an inbound message's ``To`` may hold: a bare address, ``mailto:…``, or
    ``Name <…>``. The token's case is kept (tokens are case-sensitive); the domain is not
    checked, since only a valid signature makes the token mean anything.
    """
    if not isinstance(address, str) or len(address) > 1000:
        return None
    candidate = address.strip()
    if candidate[:7].lower() == "mailto:":
        candidate = candidate[7:].split("?", 1)[0]
    _, addr_spec = parseaddr(candidate)
    match = _MAILTO.fullmatch(addr_spec or candidate)
    return match[1] if match else None
