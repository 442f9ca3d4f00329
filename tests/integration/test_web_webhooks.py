"""POST /webhooks/sendgrid over real HTTP, signed with a key pair made in the test.

Events are applied by the real ``DeliveryEvents`` on both database backends; what was
applied is read back from the ``webhook_events`` table.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine, func, select

from nurture.runtime.services import Services, build_services
from nurture.settings import Settings
from nurture.store.schema import webhook_events
from nurture.testing import FakeProvider
from nurture.testing.webhook_signing import WebhookSigner, encode_events, make_event, post_events
from nurture.web.app import create_app
from nurture.web.webhooks import MAX_BODY
from tests.helpers import serve_app


@pytest.fixture
def signer() -> WebhookSigner:
    return WebhookSigner()


@pytest.fixture
def services(settings: Settings, engine: Engine, signer: WebhookSigner) -> Services:
    configured = settings.model_copy(update={"sendgrid_webhook_public_key": signer.public_key})
    return build_services(configured, provider=FakeProvider(), engine=engine)


@pytest.fixture
def url(services: Services) -> Iterator[str]:
    with serve_app(create_app(services)) as base:
        yield f"{base}/webhooks/sendgrid"


def _recorded(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.scalars(select(webhook_events.c.event_id)))


def test_a_signed_batch_is_applied_once(
    services: Services, url: str, signer: WebhookSigner
) -> None:
    events = [
        make_event("delivered", "reader@example.org", event_id="evt-delivered"),
        make_event("deferred", "reader@example.org", event_id="evt-deferred"),
        make_event("open", "reader@example.org", event_id="evt-open"),
    ]
    first = post_events(url, events, signer)
    assert first.status_code == 200
    assert first.json() == {"received": 3, "applied": 3}
    assert _recorded(services.engine) == {"evt-delivered", "evt-deferred", "evt-open"}
    with services.engine.connect() as conn:
        rows = conn.execute(select(webhook_events.c.event_id, webhook_events.c.event))
        kinds = {row.event_id: row.event for row in rows}
    assert kinds == {"evt-delivered": "delivered", "evt-deferred": "deferred", "evt-open": "open"}

    # SendGrid retries and replays: the same events again change nothing.
    again = post_events(url, events, signer)
    assert again.status_code == 200
    assert again.json() == {"received": 3, "applied": 0}


def test_an_empty_batch_is_fine(url: str, signer: WebhookSigner) -> None:
    response = post_events(url, [], signer)
    assert response.status_code == 200
    assert response.json() == {"received": 0, "applied": 0}


def test_a_bad_signature_is_refused_and_nothing_applied(
    services: Services, url: str, signer: WebhookSigner
) -> None:
    events = [make_event("bounce", "reader@example.org", event_id="evt-forged")]
    body = encode_events(events)
    headers = signer.headers(body)
    tampered = body.replace(b"reader@", b"victim@")
    assert httpx.post(url, content=tampered, headers=headers).status_code == 403

    other = WebhookSigner()  # a different key entirely
    assert post_events(url, events, other).status_code == 403

    unsigned = httpx.post(url, content=body, headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 403
    assert _recorded(services.engine) == set()


def test_a_stale_timestamp_is_refused(services: Services, url: str, signer: WebhookSigner) -> None:
    events = [make_event("delivered", "reader@example.org", event_id="evt-stale")]
    stale = str(int(time.time()) - 3600)
    response = post_events(url, events, signer, timestamp=stale)
    assert response.status_code == 403
    assert _recorded(services.engine) == set()


def test_malformed_json_with_a_valid_signature_is_400(
    services: Services, url: str, signer: WebhookSigner
) -> None:
    for body in (b'[{"email": "reader@example.org", ', b'{"not": "a list"}', b"[1, 2]"):
        response = httpx.post(url, content=body, headers=signer.headers(body))
        assert response.status_code == 400, body
    assert _recorded(services.engine) == set()


def test_an_oversized_body_is_413(url: str, signer: WebhookSigner) -> None:
    body = b"[" + b" " * MAX_BODY + b"]"
    response = httpx.post(url, content=body, headers=signer.headers(body), timeout=30)
    assert response.status_code == 413


def test_not_configured_is_503(settings: Settings, engine: Engine) -> None:
    assert settings.sendgrid_webhook_public_key is None
    services = build_services(settings, provider=FakeProvider(), engine=engine)
    signer = WebhookSigner()
    events = [make_event("delivered", "reader@example.org")]
    with serve_app(create_app(services)) as base:
        response = post_events(f"{base}/webhooks/sendgrid", events, signer)
    assert response.status_code == 503
    assert response.json() == {"error": "webhook not configured"}
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(webhook_events)) == 0
