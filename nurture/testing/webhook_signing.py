"""Signs SendGrid Event Webhook batches with a key pair made on the spot, for tests.

:class:`WebhookSigner` plays SendGrid's part: it holds a fresh ECDSA P-256 key, shows
the public half the way SendGrid's settings page does (give it to
``SendGridWebhook`` or ``NURTURE_SENDGRID_WEBHOOK_PUBLIC_KEY``) and signs
``timestamp + body`` exactly as SendGrid does. :func:`make_event` builds realistic
events and :func:`post_events` sends a signed batch to a running app or a test client.

:func:`post_events` needs ``httpx`` (the ``nurture[testing]`` extra), imported when it
is called, so that a production install need not carry it.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nurture.webhooks.sendgrid import SIGNATURE_HEADER, TIMESTAMP_HEADER

if TYPE_CHECKING:
    import httpx


class WebhookSigner:
    """SendGrid's signing half of the Event Webhook, with a key pair of its own."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey | None = None) -> None:
        self.private_key = private_key or ec.generate_private_key(ec.SECP256R1())

    @property
    def public_key(self) -> str:
        """The verification key as SendGrid shows it: base64 of the DER public key."""
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    @property
    def public_key_pem(self) -> str:
        """The same key in PEM, which ``SendGridWebhook`` accepts too."""
        return (
            self.private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def sign(self, body: bytes, timestamp: str) -> str:
        """The ``X-Twilio-Email-Event-Webhook-Signature`` value SendGrid sends for ``body``."""
        der = self.private_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: str | None = None) -> dict[str, str]:
        """The request headers of a signed delivery of ``body`` (timestamp: now by default)."""
        stamp = timestamp if timestamp is not None else str(int(time.time()))
        return {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: self.sign(body, stamp),
            TIMESTAMP_HEADER: stamp,
        }


def make_event(
    kind: str,
    email: str,
    outbox_id: int | None = None,
    *,
    at: datetime | None = None,
    event_id: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """One event as SendGrid sends it.

    ``kind`` is a SendGrid event name (``delivered``, ``bounce``, ...) or ``soft_bounce``,
    shorthand for a ``bounce`` of type ``blocked``. ``outbox_id`` is flattened into the
    event as SendGrid does with ``custom_args``; ``fields`` add or override anything.
    """
    stamp = int(at.timestamp()) if at else int(time.time())
    event: dict[str, Any] = {
        "email": email,
        "timestamp": stamp,
        "smtp-id": f"<{secrets.token_hex(8)}@ismtpd-0001>",
        "event": "bounce" if kind == "soft_bounce" else kind,
        "category": ["nurture"],
        "sg_event_id": event_id or secrets.token_urlsafe(16),
        "sg_message_id": f"{secrets.token_urlsafe(16)}.filterdrecv-0001.1.0",
    }
    if kind == "bounce":
        event.update(
            type="bounce", status="5.1.1", reason="550 5.1.1 The email account does not exist."
        )
    elif kind == "soft_bounce":
        event.update(type="blocked", status="4.0.0", reason="421 Service temporarily unavailable")
    elif kind == "dropped":
        event.update(reason="Bounced Address", status="5.0.0")
    elif kind == "deferred":
        event.update(response="400 try again later", attempt="1")
    elif kind == "delivered":
        event.update(response="250 OK", ip="168.1.1.1")
    elif kind in ("open", "click"):
        event.update(useragent="Mozilla/5.0", ip="255.255.255.255", sg_machine_open=False)
        if kind == "click":
            event["url"] = "https://www.example-practice.com/"
    elif kind in ("group_unsubscribe", "group_resubscribe"):
        event["asm_group_id"] = 10
    if outbox_id is not None:
        event["outbox_id"] = str(outbox_id)
    event.update(fields)
    return event


def encode_events(events: Sequence[dict[str, Any]]) -> bytes:
    """A batch body as SendGrid sends it: a JSON array."""
    return json.dumps(list(events)).encode()


def post_events(
    url: str,
    events: Sequence[dict[str, Any]],
    signer: WebhookSigner,
    timestamp: str | None = None,
    *,
    client: httpx.Client | None = None,
) -> httpx.Response:
    """POSTs a signed batch to ``url``; pass ``client`` (Starlette's TestClient is one)
    to reach an app in process, otherwise a real HTTP request is made."""
    body = encode_events(events)
    headers = signer.headers(body, timestamp)
    if client is not None:
        return client.post(url, content=body, headers=headers)
    try:
        import httpx
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("post_events needs httpx: pip install 'nurture[testing]'") from exc
    return httpx.post(url, content=body, headers=headers, timeout=10)
