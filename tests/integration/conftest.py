"""Fixtures for the integration tests: a fake SendGrid on loopback, a provider for it,
and a signer for its Event Webhook."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nurture.providers.sendgrid import SendGridProvider
from nurture.settings import Settings
from nurture.testing.sendgrid import FakeSendGrid
from nurture.testing.webhook_signing import WebhookSigner
from tests.integration.support import API_KEY, sendgrid_settings


@pytest.fixture
def fake() -> Iterator[FakeSendGrid]:
    """The fake SendGrid, validating every request; modules may define their own."""
    with FakeSendGrid(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def provider(settings: Settings, fake: FakeSendGrid) -> SendGridProvider:
    return SendGridProvider(sendgrid_settings(settings, fake))


@pytest.fixture
def signer() -> WebhookSigner:
    return WebhookSigner()
