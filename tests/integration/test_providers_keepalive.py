"""Kept-alive connections under the official SendGrid client, against the fake SendGrid."""

from __future__ import annotations

from typing import Any

from nurture.providers import keepalive
from nurture.providers.sendgrid import SendGridProvider
from nurture.settings import Settings
from nurture.testing.sendgrid import FakeSendGrid
from tests.integration.providers_contract import make_batch
from tests.integration.support import sendgrid_settings


def idle(provider: SendGridProvider) -> list[Any]:
    client = provider.client.client
    assert isinstance(client, keepalive.KeepAliveClient)
    return [conn for _, conn, _ in client._connections._idle]


def test_requests_reuse_one_connection(provider: SendGridProvider, fake: FakeSendGrid) -> None:
    provider.send(make_batch(2))
    (first,) = idle(provider)
    provider.send(make_batch(2))
    fake.fail_next(status=500)
    provider.send(make_batch(1))  # an error answer leaves the connection usable

    assert idle(provider) == [first]
    assert fake.statuses == [202, 202, 500]


def test_a_dropped_connection_is_replaced(provider: SendGridProvider, fake: FakeSendGrid) -> None:
    provider.send(make_batch(1))
    (first,) = idle(provider)
    fake.fail_next(drop=True)

    (lost,) = provider.send(make_batch(1))
    (sent,) = provider.send(make_batch(1))

    assert lost.outcome == "retry" and lost.maybe_sent
    assert sent.outcome == "sent"
    (second,) = idle(provider)
    assert second is not first


def test_a_connection_idle_too_long_is_not_reused(
    settings: Settings, fake: FakeSendGrid, monkeypatch: Any
) -> None:
    provider = SendGridProvider(sendgrid_settings(settings, fake))
    provider.send(make_batch(1))
    (first,) = idle(provider)
    monkeypatch.setattr(keepalive, "MAX_IDLE_SECONDS", -1.0)

    (sent,) = provider.send(make_batch(1))

    assert sent.outcome == "sent"
    assert first.sock is None  # closed, not reused
    assert idle(provider)[0] is not first
