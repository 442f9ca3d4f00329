"""``POST /webhooks/sendgrid``: SendGrid's signed Event Webhook.

The order matters and is the whole point, and :meth:`nurture.webhooks.Webhook.process`
owns it: read the raw body (at most :data:`MAX_BODY` bytes), verify the signature over
exactly those bytes, and only then parse. This route only reads the body, hands it to
``process`` and applies what comes back. A request that fails verification gets 403
and nothing is parsed, let alone applied. Any non-2xx answer makes SendGrid retry for
24 hours, so an answer of 2xx means "applied (or a known duplicate)": a database
failure while applying surfaces as 500 and the batch comes again; duplicates are
applied once.

Answers: 200 ``{"received": n, "applied": m}``; 400 malformed body; 403 bad or stale
signature; 413 body too large; 503 no verification key configured (never accept
unsigned events).
"""

from __future__ import annotations

import logging
from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from nurture import metrics
from nurture.exceptions import WebhookError
from nurture.runtime.services import Services
from nurture.web import forms
from nurture.webhooks import DeliveryEvent, MalformedWebhook, Webhook
from nurture.webhooks.sendgrid import SendGridWebhook

logger = logging.getLogger(__name__)

#: SendGrid batches are far smaller; anything bigger is not SendGrid.
MAX_BODY = 5 * 1024 * 1024


class WebhookEndpoint:
    """The POST endpoint of one provider's webhook; ``webhook`` is ``None`` when unconfigured."""

    def __init__(self, services: Services, provider: str, webhook: Webhook | None) -> None:
        self.services = services
        self.provider = provider
        self.webhook = webhook

    async def post(self, request: Request) -> Response:
        """Reads, verifies and parses the request (:meth:`Webhook.process`), then applies it."""
        if self.webhook is None:
            return _answer(503, error="webhook not configured")
        try:
            body = await forms.read_body(request, MAX_BODY)
        except forms.BodyTooLarge:
            return _answer(413, error="body too large")
        now = self.services.clock()
        try:
            events = await run_in_threadpool(self.webhook.process, body, request.headers, now=now)
        except MalformedWebhook as exc:
            self._log(": malformed body: %s", exc, "webhook.malformed")
            return _answer(400, error="malformed body")
        except WebhookError as exc:
            self._log(" refused: %s", exc, "webhook.refused")
            metrics.webhook_events.labels(kind="refused", applied="no").inc()
            return _answer(403, error="invalid signature")
        applied = await run_in_threadpool(_apply, self.services, events, now)
        logger.info(
            "%s webhook: %d events, %d new",
            self.provider,
            len(events),
            applied,
            extra={"action": "webhook.applied", "provider": self.provider},
        )
        return JSONResponse({"received": len(events), "applied": applied})

    def _log(self, what: str, exc: WebhookError, action: str) -> None:
        # The reason only: never the body (it holds addresses) nor the signature.
        logger.warning(
            "%s webhook" + what,
            self.provider,
            exc.message,
            extra={"action": action, "provider": self.provider},
        )


def routes(services: Services) -> list[BaseRoute]:
    """The SendGrid webhook route; the key is loaded now so a bad key fails at start-up."""
    key = services.settings.sendgrid_webhook_public_key
    endpoint = WebhookEndpoint(services, "sendgrid", SendGridWebhook(key) if key else None)
    return [Route("/webhooks/sendgrid", endpoint.post, methods=["POST"], name="webhook_sendgrid")]


def _apply(services: Services, events: list[DeliveryEvent], now: datetime) -> int:
    # ``apply`` counts each event in ``nurture_webhook_events_total`` (new or duplicate).
    return services.delivery_events.apply(events, now=now) if events else 0


def _answer(status: int, **body: object) -> Response:
    return JSONResponse(body, status, headers={"Cache-Control": "no-store"})
