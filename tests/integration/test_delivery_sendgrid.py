"""Delivery through the official SendGrid client to the fake SendGrid over loopback.

A provider outage and a 429 storm end with every email delivered exactly once; a
dispatcher killed between the request and the record causes no duplicate (the webhook
reconciles it); answers lost in flight are reconciled, never resent blindly.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from sqlalchemy import Engine, select

from nurture.mail.messages import Batch
from nurture.providers import make_provider
from nurture.providers.base import Provider, SendResult
from nurture.runtime import jobs
from nurture.runtime.services import Services
from nurture.settings import Settings
from nurture.store.schema import enrolments, outbox, subscribers
from nurture.testing import FakeClock
from nurture.testing.sendgrid import FakeSendGrid
from nurture.testing.webhook_signing import WebhookSigner, make_event
from nurture.webhooks.sendgrid import SendGridWebhook
from tests.helpers import NOW, queue_newsletter, statuses
from tests.integration.support import sendgrid_settings, services_with


@pytest.fixture
def sg_settings(settings: Settings, fake: FakeSendGrid, signer: WebhookSigner) -> Settings:
    return sendgrid_settings(
        settings,
        fake,
        sendgrid_timeout=2.0,
        sendgrid_webhook_public_key=signer.public_key,
        dispatch_batch_size=10,
    )


def drain(services: Services, clock: FakeClock, *, rounds: int = 40) -> None:
    """Ticks and housekeeping, moving the clock on, until nothing is waiting."""
    for _ in range(rounds):
        jobs.tick(services)
        jobs.housekeeping(services)
        if not statuses(services.engine).keys() & {"queued", "sending", "unknown"}:
            return
        clock.advance(minutes=10)
    raise AssertionError(f"still waiting: {statuses(services.engine)}")


def test_outage_and_429_storm_end_with_each_email_delivered_once(
    sg_settings: Settings, engine: Engine, fake: FakeSendGrid
) -> None:
    emails = queue_newsletter(engine, 45)
    fake.fail_next(503, times=3)
    fake.fail_next(429, reset_in=1, times=4)
    fake.fail_next(500, times=2)
    clock = FakeClock(NOW)
    services = services_with(sg_settings, engine, clock)

    drain(services, clock)

    assert sorted(fake.recipients()) == sorted(emails)  # each exactly once
    assert statuses(engine) == {"sent": 45}
    assert 429 in fake.statuses and 503 in fake.statuses
    with engine.connect() as conn:
        ids = set(conn.execute(select(outbox.c.provider_message_id)).scalars())
    assert None not in ids


def test_every_request_carries_tracking_off_and_custom_args(
    sg_settings: Settings, engine: Engine, fake: FakeSendGrid
) -> None:
    queue_newsletter(engine, 12)
    clock = FakeClock(NOW)
    drain(services_with(sg_settings, engine, clock), clock)
    assert len(fake.accepted) == 2  # 10 + 2 with a batch size of 10
    for accepted in fake.accepted:
        body = accepted.body
        tracking = body["tracking_settings"]
        assert tracking["click_tracking"]["enable"] is False
        assert tracking["open_tracking"]["enable"] is False
        assert tracking["subscription_tracking"]["enable"] is False
        assert body["categories"] == ["newsletters"]
        for item in body["personalizations"]:
            assert item["custom_args"]["outbox_id"].isdigit()
            assert "List-Unsubscribe" in item["headers"]
            assert item["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


class Killed(BaseException):
    """The process dies: nothing after this line runs."""


class DiesAfterSending(Provider):
    """Sends for real, then the process is killed before the dispatcher records it."""

    name = "sendgrid"
    max_recipients = 1000

    def __init__(self, inner: Provider) -> None:
        self.inner = inner

    def send_chunk(self, batch: Batch) -> list[SendResult]:
        raise AssertionError("send() is overridden")

    def send(self, batch: Batch) -> list[SendResult]:
        self.inner.send(batch)
        raise Killed


def post_processed_events(
    services: Services, signer: WebhookSigner, fake: FakeSendGrid, at: datetime
) -> int:
    """What SendGrid's Event Webhook reports for what it accepted (signed, then parsed)."""
    events = [
        make_event("processed", m.to, int(m.custom_args["outbox_id"]), at=at)
        for m in fake.messages()
    ]
    body = json.dumps(events).encode()
    hook = SendGridWebhook(signer.public_key)
    headers = signer.headers(body, str(int(at.timestamp())))
    parsed = hook.process(body, headers, now=at)
    return services.delivery_events.apply(parsed, now=at)


def test_killed_between_request_and_record_is_reconciled_not_resent(
    sg_settings: Settings, engine: Engine, fake: FakeSendGrid, signer: WebhookSigner
) -> None:
    emails = queue_newsletter(engine, 8)
    clock = FakeClock(NOW)
    doomed = services_with(
        sg_settings, engine, clock, provider=DiesAfterSending(make_provider(sg_settings))
    )
    with pytest.raises(Killed):
        doomed.dispatcher.dispatch(limit=8)
    assert sorted(fake.recipients()) == sorted(emails)  # the request had left
    assert statuses(engine) == {"sending": 8}

    # A new process starts; the lease runs out; nothing may be sent again blindly.
    clock.advance(seconds=sg_settings.lease_seconds + 1)
    services = services_with(sg_settings, engine, clock)
    jobs.housekeeping(services)
    jobs.tick(services)
    assert statuses(engine) == {"unknown": 8}
    assert fake.requests_count == 1

    # SendGrid's events arrive with our outbox ids: the rows are sent, once.
    assert post_processed_events(services, signer, fake, clock.now()) == 8
    assert statuses(engine) == {"sent": 8}
    clock.advance(hours=5)
    drain(services, clock)
    assert sorted(fake.recipients()) == sorted(emails)


def test_lost_answer_waits_for_events_then_resends_when_none_came(
    sg_settings: Settings, engine: Engine, fake: FakeSendGrid
) -> None:
    emails = queue_newsletter(engine, 3)
    # The connection drops after the request arrived, and SendGrid did NOT take it.
    fake.fail_next(drop=True)
    clock = FakeClock(NOW)
    services = services_with(sg_settings, engine, clock)
    jobs.tick(services)
    assert statuses(engine) == {"unknown": 3}
    assert fake.recipients() == []

    clock.advance(minutes=sg_settings.unknown_reconcile_minutes - 1)
    jobs.housekeeping(services)
    jobs.tick(services)
    assert statuses(engine) == {"unknown": 3}  # still waiting for evidence

    clock.advance(minutes=2)
    drain(services, clock)
    assert sorted(fake.recipients()) == sorted(emails)
    assert statuses(engine) == {"sent": 3}


def test_lost_answer_of_an_accepted_request_is_not_sent_twice(
    sg_settings: Settings, engine: Engine, fake: FakeSendGrid, signer: WebhookSigner
) -> None:
    emails = queue_newsletter(engine, 3)
    fake.fail_next(drop=True, accept=True)  # SendGrid took the mail; the answer was lost
    clock = FakeClock(NOW)
    services = services_with(sg_settings, engine, clock)
    jobs.tick(services)
    assert statuses(engine) == {"unknown": 3}
    clock.advance(minutes=5)
    post_processed_events(services, signer, fake, clock.now())
    clock.advance(hours=3)
    drain(services, clock)
    assert sorted(fake.recipients()) == sorted(emails)


def test_without_events_an_unknown_outcome_is_never_resent(
    sg_settings: Settings, engine: Engine, fake: FakeSendGrid
) -> None:
    sg_settings.sendgrid_webhook_public_key = None
    queue_newsletter(engine, 2)
    fake.fail_next(drop=True, accept=True)
    clock = FakeClock(NOW)
    services = services_with(sg_settings, engine, clock)
    jobs.tick(services)
    clock.advance(minutes=sg_settings.unknown_reconcile_minutes - 1)
    jobs.housekeeping(services)
    assert statuses(engine) == {"unknown": 2}  # waiting for evidence that never comes
    clock.advance(minutes=2)
    jobs.housekeeping(services)
    jobs.tick(services)
    assert statuses(engine) == {"failed": 2}
    assert len(fake.recipients()) == 2


def test_one_bad_address_does_not_fail_its_batch(
    sg_settings: Settings, engine: Engine, fake: FakeSendGrid
) -> None:
    emails = queue_newsletter(engine, 5)
    fake.refuse_addresses = {emails[2]}
    clock = FakeClock(NOW)
    drain(services_with(sg_settings, engine, clock), clock)
    assert sorted(fake.recipients()) == sorted(e for e in emails if e != emails[2])
    assert statuses(engine) == {"sent": 4, "failed": 1}


def test_a_bounce_suppresses_and_cancels_the_rest_of_the_sequence(
    sg_settings: Settings, engine: Engine, fake: FakeSendGrid, signer: WebhookSigner
) -> None:
    clock = FakeClock(NOW)
    services = services_with(sg_settings, engine, clock)
    queue_newsletter(engine, 1)
    with engine.begin() as conn:
        subscriber_id = conn.execute(select(subscribers.c.id)).scalar_one()
        conn.execute(
            enrolments.insert().values(
                subscriber_id=subscriber_id, campaign="beginning-therapy", status="active",
                next_step=0, next_due_at=NOW, enrolled_at=NOW, updated_at=NOW,
            )
        )  # fmt: skip
    jobs.tick(services)  # the newsletter and step 1 go out
    assert fake.recipient_count == 2
    message = fake.messages()[0]
    body = json.dumps(
        [make_event("bounce", message.to, int(message.custom_args["outbox_id"]), at=NOW)]
    ).encode()
    parsed = SendGridWebhook(signer.public_key).process(
        body, signer.headers(body, str(int(NOW.timestamp()))), now=NOW
    )
    assert services.delivery_events.apply(parsed, now=NOW) == 1
    assert services.delivery_events.apply(parsed, now=NOW) == 0  # replays apply once
    clock.advance(days=30)
    drain(services, clock)
    assert fake.recipient_count == 2
    with engine.connect() as conn:
        assert conn.execute(select(subscribers.c.status)).scalar_one() == "unsubscribed"
        assert conn.execute(select(enrolments.c.status)).scalar_one() == "stopped"
