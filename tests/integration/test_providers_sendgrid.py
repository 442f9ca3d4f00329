"""The SendGrid provider, driving the official client at the fake SendGrid over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from nurture.campaigns import load_catalogue
from nurture.exceptions import ConfigurationError
from nurture.mail.messages import Batch, Sender
from nurture.mail.recipients import RecipientFactory
from nurture.mail.tokens import Tokens
from nurture.providers.sendgrid import SendGridProvider
from nurture.rendering import Renderer
from nurture.settings import Settings
from nurture.testing.sendgrid import FakeSendGrid
from tests.integration.providers_contract import Mail, ProviderContract, make_batch, make_recipient
from tests.integration.support import sendgrid_settings

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


class TestSendGridContract(ProviderContract):
    @pytest.fixture
    def provider(self, settings: Settings, fake: FakeSendGrid) -> SendGridProvider:
        return SendGridProvider(sendgrid_settings(settings, fake))

    @pytest.fixture
    def mailbox(self, fake: FakeSendGrid) -> Callable[[], list[Mail]]:
        def read() -> list[Mail]:
            return [
                Mail(m.to, m.sender, m.subject, m.text, m.html, m.headers) for m in fake.messages()
            ]

        return read


def body_of(fake: FakeSendGrid, index: int = 0) -> dict[str, Any]:
    body = fake.accepted[index].body
    assert body is not None
    return body


def test_one_request_carries_every_recipient_with_shared_content(
    provider: SendGridProvider, fake: FakeSendGrid
) -> None:
    batch = make_batch(3)
    results = provider.send(batch)

    assert fake.statuses == [202]
    assert {r.message_id for r in results} == {fake.accepted[0].message_id}
    body = body_of(fake)
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["content"][1]["value"] == batch.content.html  # placeholders, not rendered
    assert body["subject"] == batch.subject
    assert body["from"] == {"email": "hello@practice.test", "name": "Alex Morgan"}
    assert body["reply_to"] == {"email": "alex@practice.test"}
    first = body["personalizations"][0]
    assert first["to"] == [{"email": "reader0@example.com"}]
    assert first["custom_args"] == {"outbox_id": "1000"}
    assert first["headers"] == batch.recipients[0].headers
    assert first["substitutions"]["%%first_name%%"] == "Ann"
    assert body["personalizations"][2]["substitutions"]["%%first_name|html%%"] == "Sam &amp; Jo"


def test_a_newsletter_from_the_templates_carries_one_substitution_per_link(
    settings: Settings, fake: FakeSendGrid
) -> None:
    # The links' HTML placeholders are the plain ones: no |html twin doubles them in
    # each of a million personalizations, and SendGrid's substitution still makes the
    # href the very URL of the text part.
    catalogue = load_catalogue(settings)
    slug = next(iter(catalogue.newsletters))
    content = Renderer(settings, catalogue).compile("newsletters", slug)
    factory = RecipientFactory(settings, Tokens.from_settings(settings))
    people = [("sam@example.com", "pub1", "Sam & Jo", 7, None)]
    recipients = factory.marketing_batch(people, fallback="there", now=NOW)
    provider = SendGridProvider(sendgrid_settings(settings, fake))
    provider.send(Batch(content, catalogue.sender("newsletters", settings), recipients))

    substitutions = body_of(fake)["personalizations"][0]["substitutions"]
    values = recipients[0].values
    assert substitutions == {
        "%%first_name%%": "Sam & Jo",
        "%%first_name|html%%": "Sam &amp; Jo",
        "%%unsubscribe_url%%": values["unsubscribe_url"],
        "%%preferences_url%%": values["preferences_url"],
    }
    html = content.html
    for key, value in substitutions.items():  # what SendGrid does with them
        html = html.replace(key, value)
    assert f'href="{values["unsubscribe_url"]}"' in html
    assert f'href="{values["preferences_url"]}"' in html
    assert "%%" not in html


def test_tracking_is_explicitly_off_and_the_campaign_is_the_category(
    provider: SendGridProvider, fake: FakeSendGrid
) -> None:
    provider.send(make_batch(1))

    body = body_of(fake)
    assert body["categories"] == ["what-i-actually-do"]
    assert body["tracking_settings"] == {
        "click_tracking": {"enable": False, "enable_text": False},
        "open_tracking": {"enable": False},
        "subscription_tracking": {"enable": False},
    }
    assert body["mail_settings"] == {"sandbox_mode": {"enable": False}}


def test_tracking_setting_turns_open_and_click_tracking_on(
    settings: Settings, fake: FakeSendGrid
) -> None:
    SendGridProvider(sendgrid_settings(settings, fake, tracking=True)).send(make_batch(1))

    tracking = body_of(fake)["tracking_settings"]
    assert tracking["click_tracking"]["enable"] is True
    assert tracking["open_tracking"]["enable"] is True
    assert tracking["subscription_tracking"]["enable"] is False


def test_every_body_we_build_passes_the_full_schema(
    provider: SendGridProvider, fake: FakeSendGrid
) -> None:
    batch = make_batch(1000)
    assert fake.check(provider.build_request(batch)) == []


def test_2500_recipients_make_three_requests(
    provider: SendGridProvider, fake: FakeSendGrid
) -> None:
    batch = make_batch(2500)
    results = provider.send(batch)

    assert [r.outcome for r in results] == ["sent"] * 2500
    assert fake.statuses == [202, 202, 202]
    assert [a.recipient_count for a in fake.accepted] == [1000, 1000, 500]
    assert sorted(fake.recipients()) == sorted(r.email for r in batch.recipients)
    assert len({r.message_id for r in results}) == 3


def test_429_retries_after_the_rate_limit_reset(
    provider: SendGridProvider, fake: FakeSendGrid
) -> None:
    fake.fail_next(status=429, reset_in=30)

    results = provider.send(make_batch(3))

    assert [r.outcome for r in results] == ["retry"] * 3
    for result in results:
        assert result.retry_after is not None and 28 <= result.retry_after <= 31
        assert not result.maybe_sent
    assert fake.accepted == []


def test_429_reset_is_measured_against_the_given_clock(
    settings: Settings, fake: FakeSendGrid
) -> None:
    provider = SendGridProvider(sendgrid_settings(settings, fake), clock=lambda: time.time() + 3600)
    fake.fail_next(status=429, reset_in=5)

    (result,) = provider.send(make_batch(1))

    assert result.outcome == "retry" and result.retry_after == 0


def test_500_asks_for_a_retry(provider: SendGridProvider, fake: FakeSendGrid) -> None:
    fake.fail_next(status=500)

    results = provider.send(make_batch(2))

    assert [(r.outcome, r.retry_after, r.maybe_sent) for r in results] == [
        ("retry", None, False)
    ] * 2
    assert "500" in (results[0].error or "")


def test_retry_then_success_on_the_next_send(
    provider: SendGridProvider, fake: FakeSendGrid
) -> None:
    fake.fail_next(status=503)
    batch = make_batch(2)

    assert {r.outcome for r in provider.send(batch)} == {"retry"}
    assert {r.outcome for r in provider.send(batch)} == {"sent"}
    assert fake.statuses == [503, 202]


def test_a_slow_answer_beyond_the_timeout_retries_and_may_have_been_sent(
    settings: Settings, fake: FakeSendGrid
) -> None:
    provider = SendGridProvider(sendgrid_settings(settings, fake, sendgrid_timeout=0.3))
    fake.fail_next(delay=1.0)

    results = provider.send(make_batch(2))

    assert [(r.outcome, r.maybe_sent) for r in results] == [("retry", True)] * 2
    # And indeed SendGrid took it: this is why such rows are reconciled, not resent.
    assert fake.wait_accepted(1, timeout=5)
    assert fake.recipients() == ["reader0@example.com", "reader1@example.com"]


def test_a_dropped_connection_retries_and_may_have_been_sent(
    provider: SendGridProvider, fake: FakeSendGrid
) -> None:
    fake.fail_next(drop=True)

    results = provider.send(make_batch(2))

    assert [(r.outcome, r.maybe_sent) for r in results] == [("retry", True)] * 2
    assert fake.statuses == [None]


def test_an_unreachable_api_retries_and_was_not_sent(
    settings: Settings, fake: FakeSendGrid
) -> None:
    url = fake.url
    fake.stop()
    provider = SendGridProvider(sendgrid_settings(settings, fake, sendgrid_host=url))

    results = provider.send(make_batch(2))

    assert [(r.outcome, r.maybe_sent) for r in results] == [("retry", False)] * 2


def test_one_bad_address_fails_alone_and_the_others_are_sent(
    settings: Settings, fake: FakeSendGrid
) -> None:
    fake.refuse_addresses.add("reader1@example.com")
    provider = SendGridProvider(sendgrid_settings(settings, fake))

    results = provider.send(make_batch(3))

    assert [r.outcome for r in results] == ["sent", "failed", "sent"]
    assert "Does not contain a valid address" in (results[1].error or "")
    assert fake.statuses == [400, 202]
    assert fake.recipients() == ["reader0@example.com", "reader2@example.com"]


def test_bad_addresses_are_found_by_halving_when_sendgrid_does_not_name_them(
    settings: Settings,
) -> None:
    with FakeSendGrid(refuse_addresses={"reader5@example.com"}, error_fields=False) as fake:
        provider = SendGridProvider(sendgrid_settings(settings, fake))

        results = provider.send(make_batch(8))

    assert [r.recipient.email for r in results if r.outcome == "failed"] == ["reader5@example.com"]
    assert sorted(fake.recipients()) == sorted(f"reader{i}@example.com" for i in range(8) if i != 5)
    assert fake.requests_count <= 1 + 2 * 3


def test_a_shared_field_refused_fails_everyone_without_isolating(
    provider: SendGridProvider, fake: FakeSendGrid
) -> None:
    batch = make_batch(3)
    # Settings refuse such a name at start-up; a Batch built by hand can still carry one.
    bad = Batch(batch.content, Sender("hello@practice.test", "Morgan, Alex"), batch.recipients)

    results = provider.send(bad)

    assert [r.outcome for r in results] == ["failed"] * 3
    assert "from.name" in (results[0].error or "")
    assert fake.statuses == [400]


def test_a_wrong_api_key_is_a_configuration_error(settings: Settings, fake: FakeSendGrid) -> None:
    config = sendgrid_settings(settings, fake, sendgrid_api_key=SecretStr("SG.wrong"))

    with pytest.raises(ConfigurationError, match="API key"):
        SendGridProvider(config).send(make_batch(1))


def test_sandbox_mode_is_validated_but_not_delivered(
    settings: Settings, fake: FakeSendGrid
) -> None:
    provider = SendGridProvider(sendgrid_settings(settings, fake, sendgrid_sandbox=True))

    results = provider.send(make_batch(2))

    assert [r.outcome for r in results] == ["sent", "sent"]
    assert fake.statuses == [200]
    assert fake.accepted[0].sandbox and results[0].message_id == fake.accepted[0].message_id
    assert body_of(fake)["mail_settings"] == {"sandbox_mode": {"enable": True}}
    assert fake.recipients() == []


def test_the_outbox_id_travels_in_custom_args_even_when_not_given(
    provider: SendGridProvider, fake: FakeSendGrid
) -> None:
    recipient = make_recipient(7)
    bare = recipient.__class__(recipient.email, recipient.values, recipient.headers, {}, 42)
    batch = make_batch(0)
    provider.send(Batch(batch.content, batch.sender, [bare]))

    assert body_of(fake)["personalizations"][0]["custom_args"] == {"outbox_id": "42"}


def test_one_provider_sends_from_several_threads_at_once(
    provider: SendGridProvider, fake: FakeSendGrid
) -> None:
    assert provider.thread_safe
    batches = [make_batch(50) for _ in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(provider.send, batches))

    assert all(r.outcome == "sent" for results in outcomes for r in results)
    assert fake.statuses == [202] * 8
