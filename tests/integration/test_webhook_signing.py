"""``post_events`` (nurture.testing.webhook_signing) over real HTTP, to a loopback endpoint.

The endpoint verifies and parses with :class:`SendGridWebhook`, as the app does, so a
signed post is accepted and a stale or foreign signature refused.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest

from nurture.exceptions import WebhookError
from nurture.testing.webhook_signing import WebhookSigner, make_event, post_events
from nurture.webhooks.sendgrid import SendGridWebhook


@pytest.fixture(scope="module")
def signer() -> WebhookSigner:
    return WebhookSigner()


@pytest.fixture(scope="module")
def webhook(signer: WebhookSigner) -> SendGridWebhook:
    return SendGridWebhook(signer.public_key)


class _Receiver(BaseHTTPRequestHandler):
    """A loopback endpoint that verifies and parses what it receives, as the app will."""

    webhook: SendGridWebhook
    kinds: list[str]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            events = self.webhook.process(body, dict(self.headers), now=datetime.now(UTC))
        except WebhookError:
            self.send_response(403)
        else:
            self.kinds.extend(e.kind for e in events)
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_post_events_over_http(webhook: SendGridWebhook, signer: WebhookSigner) -> None:
    _Receiver.webhook, _Receiver.kinds = webhook, []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/webhooks/sendgrid"
        events = [make_event("delivered", "zoë@example.com", 1), make_event("bounce", "x@e.com", 2)]
        assert post_events(url, events, signer).status_code == 200
        assert _Receiver.kinds == ["delivered", "bounce"]
        stale = str(int(time.time()) - 3600)
        assert post_events(url, events, signer, stale).status_code == 403
        assert post_events(url, events, WebhookSigner()).status_code == 403
        with httpx.Client() as client:
            assert post_events(url, events, signer, client=client).status_code == 200
        assert len(_Receiver.kinds) == 4
    finally:
        server.shutdown()
        server.server_close()
