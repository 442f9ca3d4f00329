"""``POST /webhooks/sendgrid``: SendGrid's signed Event Webhook.

The order matters and is the whole point: read the raw body (at most
:data:`MAX_BODY` bytes), verify the signature over exactly those bytes, and only then
parse and apply. A request that fails verification gets 403 and nothing is parsed,
let alone applied. Any non-2xx answer makes SendGrid retry for 24 hours, so an answer
of 2xx means "applied (or a known duplicate)": a database failure while applying
surfaces as 500 and the batch comes again; duplicates are applied once.

Answers: 200 ``{"received": n, "applied": m}``; 400 malformed body; 403 bad or stale
signature; 413 body too large; 503 no verification key configured (never accept
unsigned events).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from nurture import metrics
from nurture.exceptions import WebhookError
from nurture.runtime.services import Services
from nurture.webhooks.base import DeliveryEvent
from nurture.webhooks.sendgrid import SIGNATURE_HEADER, TIMESTAMP_HEADER, SendGridWebhook

logger = logging.getLogger(__name__)

#: SendGrid batches are far smaller; anything bigger is not SendGrid.
MAX_BODY = 5 * 1024 * 1024


class BodyTooLarge(Exception):
    """The request body is over the limit."""


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The raw body, byte for byte; raises :class:`BodyTooLarge` past ``limit`` bytes.

    Checks ``Content-Length`` first and counts while streaming, so a lying or missing
    length cannot make the server buffer more than ``limit``.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def routes(services: Services) -> list[BaseRoute]:
    """The SendGrid webhook route; the key is loaded now so a bad key fails at start-up."""
    key = services.settings.sendgrid_webhook_public_key
    verifier = SendGridWebhook(key) if key else None

    async def sendgrid(request: Request) -> Response:
        if verifier is None:
            return _answer(503, error="webhook not configured")
        try:
            body = await read_body(request)
        except BodyTooLarge:
            return _answer(413, error="body too large")
        now = datetime.now(UTC)
        try:
            verifier.verify(
                body,
                request.headers.get(SIGNATURE_HEADER),
                request.headers.get(TIMESTAMP_HEADER),
                now=now,
            )
        except WebhookError as exc:
            # The reason only: never the body (it holds addresses) nor the signature.
            logger.warning(
                "sendgrid webhook refused: %s",
                exc.message,
                extra={"action": "webhook.refused", "provider": "sendgrid"},
            )
            metrics.webhook_events.labels(kind="refused", applied="no").inc()
            return _answer(403, error="invalid signature")
        try:
            events = await run_in_threadpool(verifier.parse, body)
        except WebhookError as exc:
            logger.warning(
                "sendgrid webhook: malformed body: %s",
                exc.message,
                extra={"action": "webhook.malformed", "provider": "sendgrid"},
            )
            return _answer(400, error="malformed body")
        applied = await run_in_threadpool(_apply, services, events, now)
        logger.info(
            "sendgrid webhook: %d events, %d new",
            len(events),
            applied,
            extra={"action": "webhook.applied", "provider": "sendgrid"},
        )
        return JSONResponse({"received": len(events), "applied": applied})

    return [Route("/webhooks/sendgrid", sendgrid, methods=["POST"], name="webhook_sendgrid")]


def _apply(services: Services, events: list[DeliveryEvent], now: datetime) -> int:
    # ``apply`` counts each event in ``nurture_webhook_events_total`` (new or duplicate).
    return services.delivery_events.apply(events, now=now) if events else 0


def _answer(status: int, **body: object) -> Response:
    return JSONResponse(body, status, headers={"Cache-Control": "no-store"})
