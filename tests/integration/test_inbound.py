"""The mailto: unsubscribe: a raw message in, the person unsubscribed."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from nurture.settings import Settings
from nurture.store.schema import consents, outbox
from nurture.subscriptions import Subscriptions, inbound
from tests.helpers import T0, add_outbox, confirmed, make_service, rows, snapshot


@pytest.fixture
def service(settings: Settings, engine: Engine) -> Subscriptions:
    return make_service(settings, engine)


def message(**headers: str) -> bytes:
    lines = [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    head = "\r\n".join(["From: Jane <jane@example.com>", "Subject: unsubscribe", *lines])
    return (head + "\r\n\r\nPlease take me off the list.\r\n").encode()


def test_finds_the_token_in_any_recipient_header(service: Subscriptions) -> None:
    token = service.tokens.make("unsubscribe", "abcdefghijklmnopqrstuv", now=T0)
    address = f"unsubscribe+{token}@practice.test"
    assert inbound.find_tokens(message(To=f'"Practice" <{address}>')) == [token]
    assert inbound.find_tokens(message(To="hello@practice.test", Delivered_To=address)) == [token]
    assert inbound.find_tokens(message(X_Original_To=address, Cc="x@example.com")) == [token]
    assert inbound.find_tokens(message(To="hello@practice.test")) == []
    assert inbound.find_tokens(b"\xff\xfe not a message at all \x00") == []
    assert inbound.find_tokens(b"") == []


def test_applies_a_valid_token(service: Subscriptions, engine: Engine, settings: Settings) -> None:
    row = confirmed(service)
    queued = add_outbox(engine, row.id, "02-saying-it-out-loud", "queued")
    token = service.tokens.make("unsubscribe", row.public_id, now=T0)
    raw = message(To=f"unsubscribe+{token}@practice.test")

    assert inbound.apply_unsubscribe_mail(engine, settings, raw, T0) is True

    assert rows(engine, outbox, outbox.c.id == queued)[0].status == "cancelled"
    record = rows(engine, consents)[-1]
    assert (record.action, record.channel) == ("withdraw", "mailto")


def test_ignores_forged_and_wrong_purpose_tokens(
    service: Subscriptions, engine: Engine, settings: Settings
) -> None:
    row = confirmed(service)
    good = service.tokens.make("unsubscribe", row.public_id, now=T0)
    before = snapshot(engine)
    for token in (
        good[:-3] + "AAA",
        service.tokens.make("confirm", row.public_id, now=T0),
        "nonsense",
    ):
        raw = message(To=f"unsubscribe+{token}@practice.test")
        assert inbound.apply_unsubscribe_mail(engine, settings, raw, T0) is False
    assert inbound.apply_unsubscribe_mail(engine, settings, message(To="a@b.c"), T0) is False
    assert snapshot(engine) == before
