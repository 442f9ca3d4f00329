"""Hostile input (issue 8): poison addresses, old confirm links, strangers' forms, floods.

Each test names the attack it stops; every one failed before its fix.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, update

from nurture.exceptions import SubscriptionError, TokenError
from nurture.mail.messages import Batch, Content, Recipient, Sender
from nurture.providers.folder import FolderProvider
from nurture.settings import Settings
from nurture.store.schema import outbox, subscribers
from nurture.subscriptions import Subscriptions, gdpr
from nurture.testing import FakeClock, FakeProvider
from tests.helpers import (
    CAMPAIGN,
    NOW,
    T0,
    make_service,
    queue_newsletter,
    request,
    rows,
    services_for,
    snapshot,
    subscriber,
)

POISON = "=?utf-8?q?victim=40gmail.com=2C_x?=@attacker.example"


@pytest.fixture
def service(settings: Settings, engine: Engine) -> Subscriptions:
    return make_service(settings, engine)


# Encoded-word local parts -----------------------------------------------------------------


def test_sign_up_refuses_an_encoded_word_address(service: Subscriptions, engine: Engine) -> None:
    before = snapshot(engine)
    with pytest.raises(SubscriptionError) as caught:
        service.sign_up(request(POISON), now=T0)
    assert caught.value.context["field"] == "email"
    assert snapshot(engine) == before


def test_import_refuses_an_encoded_word_address(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "people.csv"
    path.write_text(
        "email,first_name,timezone,consent_source,consent_date,campaign,newsletters\n"
        f"{POISON},X,,newsletter form,2025-01-01,,\n"
        "ann@example.com,Ann,,newsletter form,2025-01-01,,\n",
        encoding="utf-8",
    )
    report = gdpr.import_csv(engine, settings, path, T0, campaigns={CAMPAIGN})
    assert report.imported == 1
    assert [line for line, _ in report.refused] == [2]
    assert [r.email for r in rows(engine, subscribers)] == ["ann@example.com"]


@pytest.mark.parametrize("backend", ["folder", "fake"])
def test_a_poison_recipient_already_stored_fails_alone_and_blocks_nobody(
    backend: str, settings: Settings, engine: Engine
) -> None:
    # Before the fix, building its message raised inside the send of the whole batch:
    # every row of the batch went "unknown" and was retried forever.
    queue_newsletter(engine, 4)
    with engine.begin() as conn:  # stored before sign-up refused such addresses
        conn.execute(
            update(subscribers)
            .where(subscribers.c.email == "reader1@example.org")
            .values(email=POISON)
        )
    provider = FolderProvider(settings) if backend == "folder" else FakeProvider()
    services = services_for(settings, engine, FakeClock(NOW), provider)

    services.dispatcher.dispatch()

    poison_id = next(r.id for r in rows(engine, subscribers) if r.email == POISON)
    states = {r.subscriber_id: (r.status, r.error) for r in rows(engine, outbox)}
    status, error = states.pop(poison_id)
    assert status == "failed" and "encoded word" in (error or "")
    assert [s for s, _ in states.values()] == ["sent"] * 3


def _batch(*emails: str) -> Batch:
    content = Content(CAMPAIGN, "01", "Subject", "pre", "<p>Hi</p>", "Hi")
    recipients = [Recipient(e, outbox_id=i + 1) for i, e in enumerate(emails)]
    return Batch(content, Sender("hello@practice.test", "Practice"), recipients)


def test_folder_writes_idn_domains_in_punycode_and_utf8_local_parts_raw(
    settings: Settings,
) -> None:
    provider = FolderProvider(settings)
    results = provider.send(_batch("joe@exämple.com", POISON, "jöe@exämple.com"))

    assert [r.outcome for r in results] == ["sent", "failed", "sent"]
    first = provider.path_for(1).read_bytes()
    assert b"To: joe@xn--exmple-cua.com\r\n" in first
    # RFC 6532: the local part as UTF-8, never an encoded word (which names another box).
    third = provider.path_for(3).read_bytes()
    assert "To: jöe@xn--exmple-cua.com\r\n".encode() in third
    assert b"=?utf-8?" not in third.split(b"\r\n\r\n")[0]
    assert not provider.path_for(2).exists()


def test_folder_builds_each_message_inside_its_recipients_own_error_handling(
    settings: Settings,
) -> None:
    provider = FolderProvider(settings)
    provider.open()
    bad = Recipient("bo@example.com", headers={"X-Note": "a\r\nBcc: c@d.example"}, outbox_id=2)
    batch = _batch("ann@example.com")
    results = provider.send_chunk(Batch(batch.content, batch.sender, [batch.recipients[0], bad]))
    assert [r.outcome for r in results] == ["sent", "failed"]


def test_a_backend_without_smtputf8_fails_only_the_non_ascii_local_part() -> None:
    provider = FakeProvider()
    provider.smtputf8 = False
    results = provider.send(_batch("ann@example.com", "jöe@example.com", "bo@exämple.com"))
    assert [r.outcome for r in results] == ["sent", "failed", "sent"]
    assert "SMTPUTF8" in (results[1].error or "")
    assert [r.email for r in provider.batches[0].recipients] == [
        "ann@example.com",
        "bo@exämple.com",
    ]


def test_sendgrid_gets_punycode_and_no_utf8_local_part(settings: Settings) -> None:
    from pydantic import SecretStr

    from nurture.providers.sendgrid import SendGridProvider

    provider = SendGridProvider(settings.model_copy(update={"sendgrid_api_key": SecretStr("k")}))
    body = provider.build_request(_batch("bo@exämple.com"))
    assert body["personalizations"][0]["to"] == [{"email": "bo@xn--exmple-cua.com"}]
    assert provider.address_problem(Recipient("jöe@example.com")) is not None
    assert provider.address_problem(Recipient(POISON)) is not None


# Old confirm links --------------------------------------------------------------------------


def test_a_confirm_link_from_before_an_unsubscribe_stays_dead_after_a_strangers_sign_up(
    service: Subscriptions, engine: Engine
) -> None:
    service.sign_up(request(), now=T0)
    row = subscriber(engine)
    old_link = service.tokens.make("confirm", row.public_id, now=T0)
    service.confirm(old_link, now=T0 + timedelta(minutes=1))
    t1 = T0 + timedelta(days=1)
    service.unsubscribe(
        service.tokens.make("unsubscribe", row.public_id, now=t1), channel="link", now=t1
    )
    # A stranger re-submits the address: a fresh confirmation goes to the inbox...
    t2 = t1 + timedelta(hours=1)
    assert service.sign_up(request(first_name=None), now=t2) is not None

    # ...but the link signed before the unsubscribe must not work again.
    with pytest.raises(TokenError):
        service.person("confirm", old_link, now=t2 + timedelta(minutes=1))
    with pytest.raises(TokenError):
        service.confirm(old_link, now=t2 + timedelta(minutes=1))
    assert subscriber(engine).status == "unsubscribed"

    # The fresh link, signed after the unsubscribe, does.
    fresh = service.tokens.make("confirm", row.public_id, now=t2)
    service.confirm(fresh, now=t2 + timedelta(minutes=2))
    assert subscriber(engine).status == "confirmed"
    # And the old one stays dead even now that the row no longer says "unsubscribed".
    with pytest.raises(TokenError):
        service.confirm(old_link, now=t2 + timedelta(minutes=3))


# Strangers editing pending sign-ups --------------------------------------------------------


def test_a_strangers_second_sign_up_cannot_rename_a_pending_person(
    service: Subscriptions, engine: Engine
) -> None:
    service.sign_up(request(first_name="Jane", timezone="Europe/Berlin"), now=T0)
    public_id = subscriber(engine).public_id
    link_a = service.tokens.make("confirm", public_id, now=T0)
    # Within 10 minutes (no email queued) and later (a second email queued).
    service.sign_up(
        request(first_name="Mallory", timezone="Asia/Tokyo"), now=T0 + timedelta(minutes=5)
    )
    t_b = T0 + timedelta(minutes=11)
    assert (
        service.sign_up(request(first_name="Clickhere", timezone="Pacific/Kiritimati"), now=t_b)
        is not None
    )
    pending = subscriber(engine)
    assert (pending.first_name, pending.timezone) == ("Jane", "Europe/Berlin")

    result = service.confirm(link_a, now=t_b + timedelta(minutes=1))

    final = subscriber(engine)
    assert (final.first_name, final.timezone) == ("Jane", "Europe/Berlin")
    assert result.first_name == "Jane"


def test_confirming_applies_the_details_of_the_email_clicked(
    service: Subscriptions, engine: Engine
) -> None:
    service.sign_up(request(first_name="Jane", timezone="Europe/Berlin"), now=T0)
    public_id = subscriber(engine).public_id
    t_b = T0 + timedelta(hours=1)
    service.sign_up(request(first_name="Janet", timezone="Europe/Paris"), now=t_b)
    assert (subscriber(engine).first_name, subscriber(engine).timezone) == (
        "Jane",
        "Europe/Berlin",
    )
    # The owner of the inbox presses the later email's link: its details apply.
    service.confirm(service.tokens.make("confirm", public_id, now=t_b), now=t_b)
    assert (subscriber(engine).first_name, subscriber(engine).timezone) == (
        "Janet",
        "Europe/Paris",
    )


def test_erasure_takes_the_kept_details_with_it(
    service: Subscriptions, engine: Engine, settings: Settings
) -> None:
    from nurture.store.schema import confirmation_details

    service.sign_up(request(first_name="Jane"), now=T0)
    assert len(rows(engine, confirmation_details)) == 1
    gdpr.erase(engine, settings, "jane@example.com", T0 + timedelta(days=1))
    assert rows(engine, confirmation_details) == []


# Confirmation floods ---------------------------------------------------------------------


def test_at_most_three_confirmations_per_address_per_day(
    service: Subscriptions, engine: Engine
) -> None:
    queued = []
    for i in range(144):  # one sign-up every 10 minutes for a day
        outbox_id = service.sign_up(request(), now=T0 + timedelta(minutes=10 * i))
        if outbox_id is not None:
            queued.append(outbox_id)
    assert len(queued) == 3
    assert len([r for r in rows(engine, outbox) if r.kind == "confirmation"]) == 3
    # A day after the first, one more is allowed.
    assert service.sign_up(request(), now=T0 + timedelta(days=1, minutes=1)) is not None
