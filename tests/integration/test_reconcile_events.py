"""Lost answers reconciled in minutes when webhook traffic flows (issue 8).

A dropped connection leaves its rows ``unknown``. When SendGrid's events arrive for
requests sent *after* those rows went unknown, and none for them within
UNKNOWN_EVENT_GRACE_MINUTES, their request never reached SendGrid: they are queued
again at once instead of a day later. Events are signed and go through the real
webhook parser, as the endpoint does.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from nurture.runtime import jobs
from nurture.runtime.services import Services
from nurture.settings import Settings
from nurture.testing import FakeClock
from nurture.testing.sendgrid import FakeSendGrid
from nurture.testing.webhook_signing import WebhookSigner, make_event
from nurture.webhooks.sendgrid import SendGridWebhook
from tests.helpers import NOW, queue_newsletter, statuses
from tests.integration.support import sendgrid_settings, services_with


@pytest.fixture
def sg(settings: Settings, fake: FakeSendGrid, signer: WebhookSigner) -> Settings:
    return sendgrid_settings(
        settings,
        fake,
        sendgrid_timeout=2.0,
        sendgrid_webhook_public_key=signer.public_key,
        dispatch_batch_size=3,
    )


def report_accepted(
    services: Services, signer: WebhookSigner, fake: FakeSendGrid, clock: FakeClock
) -> int:
    """SendGrid's signed ``processed`` events for everything it accepted so far."""
    at = clock.now()
    events = [
        make_event("processed", m.to, int(m.custom_args["outbox_id"]), at=at)
        for m in fake.messages()
    ]
    body = json.dumps(events).encode()
    parsed = SendGridWebhook(signer.public_key).process(
        body, signer.headers(body, str(int(at.timestamp()))), now=at
    )
    return services.delivery_events.apply(parsed, now=at)


def test_later_events_requeue_a_lost_request_within_minutes(
    sg: Settings, engine: Engine, fake: FakeSendGrid, signer: WebhookSigner
) -> None:
    emails = queue_newsletter(engine, 6)
    clock = FakeClock(NOW)
    services = services_with(sg, engine, clock)
    fake.fail_next(drop=True)  # the first request never reached SendGrid
    services.dispatcher.dispatch(limit=3)
    assert statuses(engine) == {"unknown": 3, "queued": 3}
    clock.advance(minutes=1)
    services.dispatcher.dispatch()  # later requests go through
    assert report_accepted(services, signer, fake, clock) == 3

    clock.advance(minutes=sg.unknown_event_grace_minutes - 1)
    jobs.housekeeping(services)
    assert statuses(engine) == {"unknown": 3, "sent": 3}  # the grace period runs

    clock.advance(minutes=2)
    jobs.housekeeping(services)
    jobs.tick(services)
    assert statuses(engine) == {"sent": 6}
    assert sorted(fake.recipients()) == sorted(emails)  # each exactly once
    assert clock.now() - NOW < timedelta(minutes=sg.unknown_reconcile_minutes)


def test_an_accepted_request_whose_events_come_within_the_grace_is_not_resent(
    sg: Settings, engine: Engine, fake: FakeSendGrid, signer: WebhookSigner
) -> None:
    emails = queue_newsletter(engine, 6)
    clock = FakeClock(NOW)
    services = services_with(sg, engine, clock)
    fake.fail_next(drop=True, accept=True)  # SendGrid took it; the answer was lost
    services.dispatcher.dispatch(limit=3)
    clock.advance(minutes=1)
    services.dispatcher.dispatch()
    clock.advance(minutes=sg.unknown_event_grace_minutes - 2)
    jobs.housekeeping(services)
    assert statuses(engine) == {"unknown": 3, "sent": 3}
    report_accepted(services, signer, fake, clock)  # the lost request's events too
    clock.advance(hours=1)
    jobs.housekeeping(services)
    jobs.tick(services)
    assert statuses(engine) == {"sent": 6}
    assert sorted(fake.recipients()) == sorted(emails)


def test_without_webhook_traffic_the_long_wait_stands(
    sg: Settings, engine: Engine, fake: FakeSendGrid
) -> None:
    queue_newsletter(engine, 6)
    clock = FakeClock(NOW)
    services = services_with(sg, engine, clock)
    fake.fail_next(drop=True)
    services.dispatcher.dispatch(limit=3)
    clock.advance(minutes=1)
    services.dispatcher.dispatch()
    clock.advance(hours=2)  # no events posted at all
    jobs.housekeeping(services)
    assert statuses(engine) == {"unknown": 3, "sent": 3}
