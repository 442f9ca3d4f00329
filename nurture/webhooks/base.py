"""Provider webhooks: verify the request, then parse it into normalised delivery events.

Modelled on django-anymail's webhook views: the base class owns the order, each provider
fills two hooks. :meth:`Webhook.verify_request` checks the request came from the
provider (signature, freshness; in constant time) and :meth:`Webhook.parse` turns the
body into :class:`DeliveryEvent` objects that keep the provider's event as received.
:meth:`Webhook.process` is the one call a web endpoint makes: it verifies, and only
then parses, so nothing is parsed, let alone applied, from a request that failed
verification. Its two failures are told apart because they are answered differently:
:class:`~nurture.exceptions.WebhookError` (not from the provider: refuse) and its
subclass :class:`MalformedWebhook` (from the provider but unreadable). Applying events
(marking outbox rows, suppressing addresses) is the caller's job; these classes touch
no database.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from nurture.exceptions import WebhookError

EventKind = Literal[
    "processed",
    "delivered",
    "deferred",
    "bounce",
    "soft_bounce",
    "dropped",
    "spamreport",
    "unsubscribe",
    "group_unsubscribe",
    "open",
    "click",
    "other",
]

#: Kinds after which the address must never be mailed again (until a fresh opt-in).
SUPPRESSING: frozenset[str] = frozenset(
    {"bounce", "dropped", "spamreport", "unsubscribe", "group_unsubscribe"}
)


@dataclass(frozen=True)
class DeliveryEvent:
    """One provider event about one message to one address, in nurture's terms.

    ``event_id`` is the provider's unique id for the event (the dedupe key: providers
    deliver the same event more than once). ``kind`` ``bounce`` is a hard bounce only;
    blocked or temporary failures are ``soft_bounce``. ``outbox_id`` is the row the
    message was sent for, when the send carried it. ``raw`` is the event as received.
    """

    event_id: str
    kind: EventKind
    email: str
    outbox_id: int | None
    occurred_at: datetime
    reason: str | None
    raw: dict[str, Any] = field(compare=False, repr=False)

    @property
    def suppresses(self) -> bool:
        """Whether this event means the address must be suppressed and its queue cancelled."""
        return self.kind in SUPPRESSING


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name`` in any letter case, or ``None`` when absent."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


class MalformedWebhook(WebhookError):
    """A verified webhook body could not be read."""


class Webhook(ABC):
    """A provider's webhook: subclasses implement :meth:`verify_request` and :meth:`parse`.

    Callers use :meth:`process`, never the two hooks one by one.
    """

    #: The provider's name, for logs and metrics.
    name: str = "base"

    @abstractmethod
    def verify_request(self, body: bytes, headers: Mapping[str, str], *, now: datetime) -> None:
        """Raises :class:`~nurture.exceptions.WebhookError` unless the provider sent this.

        ``body`` must be the raw request body, byte for byte: signatures cover the bytes
        sent, never a re-serialised form. Implementations compare in constant time.
        """

    @abstractmethod
    def parse(self, body: bytes) -> list[DeliveryEvent]:
        """The events in a verified body; raises ``WebhookError`` when it is malformed."""

    def process(
        self, body: bytes, headers: Mapping[str, str], *, now: datetime
    ) -> list[DeliveryEvent]:
        """The events of a request: verified, then parsed. The one call a web endpoint makes.

        ``body`` is the raw request body and ``headers`` the request's headers (any
        letter case). Raises :class:`MalformedWebhook` when a verified body cannot be
        parsed, and :class:`~nurture.exceptions.WebhookError` when the request fails
        verification; catch the first before the second.
        """
        self.verify_request(body, headers, now=now)
        try:
            return self.parse(body)
        except MalformedWebhook:
            raise
        except WebhookError as exc:
            # Parsers raise plain WebhookError; say which step failed, keeping the context.
            raise MalformedWebhook(exc.message, **exc.context) from exc
