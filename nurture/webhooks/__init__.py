"""Provider webhooks: verified, parsed into :class:`DeliveryEvent` objects, never applied here.

``base`` holds the normalised event and the verify-then-parse pipeline; each provider
module (``sendgrid``) fills in its signature scheme and event format.
"""

from __future__ import annotations

from nurture.webhooks.base import SUPPRESSING, DeliveryEvent, EventKind, Webhook

__all__ = ["SUPPRESSING", "DeliveryEvent", "EventKind", "Webhook"]
