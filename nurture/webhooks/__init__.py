"""Provider webhooks: verified, parsed into :class:`DeliveryEvent` objects, never applied here.

``base`` holds the normalised event and the verify-then-parse pipeline
(:meth:`Webhook.process`, the one call a web endpoint makes); each provider module
(``sendgrid``) fills in its signature scheme and event format.
"""

from __future__ import annotations

from nurture.webhooks.base import SUPPRESSING, DeliveryEvent, EventKind, MalformedWebhook, Webhook

__all__ = ["SUPPRESSING", "DeliveryEvent", "EventKind", "MalformedWebhook", "Webhook"]
