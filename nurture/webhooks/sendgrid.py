"""SendGrid's signed Event Webhook: ECDSA P-256 verification and event parsing.

SendGrid signs ``timestamp + body`` (the ``X-Twilio-Email-Event-Webhook-Timestamp``
header followed by the raw request body) with ECDSA P-256 over SHA-256 and sends the
base64 DER signature in ``X-Twilio-Email-Event-Webhook-Signature``. Verification uses
the official library's :class:`sendgrid.helpers.eventwebhook.EventWebhook` (itself built
on ``cryptography``) on the body exactly as received. The timestamp must be within
``tolerance_seconds`` of ``now`` either way, which bounds how long a captured request can
be replayed; replays inside that window are harmless because events are applied once
per ``sg_event_id``.

The body is a JSON array of event objects. ``custom_args`` of the send come back
flattened into each event, so ``"outbox_id": "123"`` names the outbox row.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sendgrid.helpers.eventwebhook import EventWebhook, EventWebhookHeader

from nurture.exceptions import ConfigurationError, WebhookError
from nurture.webhooks.base import DeliveryEvent, EventKind, Webhook, header

if TYPE_CHECKING:
    from nurture.settings import Settings

SIGNATURE_HEADER: str = EventWebhookHeader.SIGNATURE
TIMESTAMP_HEADER: str = EventWebhookHeader.TIMESTAMP

# SendGrid's event names that map one to one onto ours; any other becomes "other".
_KINDS: dict[str, EventKind] = {
    "processed": "processed",
    "delivered": "delivered",
    "deferred": "deferred",
    "dropped": "dropped",
    "spamreport": "spamreport",
    "unsubscribe": "unsubscribe",
    "group_unsubscribe": "group_unsubscribe",
    "open": "open",
    "click": "click",
}
# A DER ECDSA P-256 signature is at most 72 bytes (96 base64 characters).
_MAX_SIGNATURE = 200


def load_public_key(public_key: str) -> ec.EllipticCurvePublicKey:
    """The verification key from SendGrid's base64 DER form (as its settings page shows
    it, line breaks allowed) or from PEM; raises ``ConfigurationError`` unless P-256."""
    text = public_key.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = load_pem_public_key(text.encode())
        else:
            key = EventWebhook().convert_public_key_to_ecdsa("".join(text.split()))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ConfigurationError(
            "NURTURE_SENDGRID_WEBHOOK_PUBLIC_KEY: expected SendGrid's ECDSA P-256 "
            "verification key (base64 DER, or PEM)"
        )
    return key


class SendGridWebhook(Webhook):
    """Verifies and parses requests from SendGrid's signed Event Webhook."""

    name = "sendgrid"

    def __init__(self, public_key: str, *, tolerance_seconds: int = 600) -> None:
        self._key = load_public_key(public_key)
        self._helper = EventWebhook()
        self.tolerance_seconds = tolerance_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> SendGridWebhook:
        """The webhook for ``SENDGRID_WEBHOOK_PUBLIC_KEY``; ``ConfigurationError`` if unset."""
        if not settings.sendgrid_webhook_public_key:
            raise ConfigurationError("NURTURE_SENDGRID_WEBHOOK_PUBLIC_KEY is not set")
        return cls(settings.sendgrid_webhook_public_key)

    def verify_request(self, body: bytes, headers: Mapping[str, str], *, now: datetime) -> None:
        """:meth:`verify` with the two signature headers taken from ``headers``."""
        self.verify(
            body, header(headers, SIGNATURE_HEADER), header(headers, TIMESTAMP_HEADER), now=now
        )

    def verify(
        self, body: bytes, signature: str | None, timestamp: str | None, *, now: datetime
    ) -> None:
        """Raises :class:`WebhookError` unless SendGrid signed ``body`` at ``timestamp``.

        ``body`` is the raw request body. Refused: a missing header, a malformed value,
        a timestamp more than ``tolerance_seconds`` from ``now`` (aware) in either
        direction, a body that is not UTF-8, and any signature that does not verify.
        """
        if not signature or not timestamp:
            raise WebhookError("missing signature or timestamp header")
        if len(timestamp) > 12 or not (timestamp.isascii() and timestamp.isdigit()):
            raise WebhookError("malformed timestamp header")
        skew = now.timestamp() - int(timestamp)
        if abs(skew) > self.tolerance_seconds:
            raise WebhookError("timestamp outside tolerance", skew_seconds=int(skew))
        if len(signature) > _MAX_SIGNATURE:
            raise WebhookError("malformed signature header")
        try:
            # Strict here: the helper's own decoding silently skips stray characters.
            base64.b64decode(signature, validate=True)
            # The helper signs (timestamp + payload).encode("utf-8"): for a body that is
            # valid UTF-8 that is exactly timestamp bytes + the raw body bytes.
            payload = body.decode("utf-8")
        except ValueError:  # binascii.Error, UnicodeDecodeError, non-ASCII signature
            raise WebhookError("malformed signature or body") from None
        try:
            valid = self._helper.verify_signature(payload, signature, timestamp, self._key)
        except ValueError:  # nothing expected past the checks above; refuse, never crash
            valid = False
        if not valid:
            raise WebhookError("bad signature")

    def parse(self, body: bytes) -> list[DeliveryEvent]:
        """The events of a (verified) body, in order; ``WebhookError`` when malformed."""
        try:
            data = json.loads(body, parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            raise WebhookError("body is not JSON") from None
        if not isinstance(data, list):
            raise WebhookError("expected a JSON array of events")
        return [_event(item, index) for index, item in enumerate(data)]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _event(item: object, index: int) -> DeliveryEvent:
    if not isinstance(item, dict):
        raise WebhookError("event is not an object", index=index)
    email = item.get("email")
    if not isinstance(email, str) or not email:
        raise WebhookError("event without an email", index=index)
    name = item.get("event")
    kind: EventKind
    if name == "bounce":
        # SendGrid's "bounce" covers both: type "bounce" is permanent, "blocked" is the
        # receiving server refusing for now (reputation, content). Only the first suppresses.
        kind = "bounce" if item.get("type") in (None, "", "bounce") else "soft_bounce"
    else:
        kind = _KINDS.get(name, "other") if isinstance(name, str) else "other"
    reason = item.get("reason") or item.get("response")
    return DeliveryEvent(
        event_id=_event_id(item),
        kind=kind,
        email=email,
        outbox_id=_outbox_id(item),
        occurred_at=_occurred_at(item.get("timestamp"), index),
        reason=None if reason is None else str(reason),
        raw=item,
    )


def _event_id(item: dict[str, Any]) -> str:
    event_id = item.get("sg_event_id")
    if isinstance(event_id, str) and event_id:
        return event_id
    # SendGrid always sends one; should it not, a digest of the event still dedupes
    # the retried copies of that same event.
    canonical = json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


def _outbox_id(item: dict[str, Any]) -> int | None:
    value = item.get("outbox_id")
    if value is None:
        nested = item.get("custom_args") or item.get("unique_args")
        value = nested.get("outbox_id") if isinstance(nested, dict) else None
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value > 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19:
        return int(value) or None
    return None


def _occurred_at(value: object, index: int) -> datetime:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12:
        value = int(value)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise WebhookError("event without a valid timestamp", index=index)
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise WebhookError("event timestamp out of range", index=index) from None
