"""Addresses built to fool a header parser: refused at the door, and never written wrong.

An RFC 2047 encoded word in a local part is valid RFC 5322 syntax, but Python's header
parser decodes it in ``To:`` into other people's addresses (issue 8).
"""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest

from nurture.exceptions import SubscriptionError
from nurture.mail.messages import (
    Batch,
    Content,
    Recipient,
    Sender,
    UnsendableRecipient,
    header_address,
)
from nurture.subscriptions.validation import normalise_address

ENCODED_WORDS = [
    "=?utf-8?q?victim=40gmail.com=2C_x?=@attacker.example",
    "=?utf-8?q?victim=40gmail.com?=@attacker.example",
    "=?utf-8?b?dmljdGltQGdtYWlsLmNvbQ==?=@attacker.example",
    "a=?x?=@example.com",
]


@pytest.mark.parametrize("address", ENCODED_WORDS)
def test_an_encoded_word_local_part_is_refused_at_sign_up(address: str) -> None:
    with pytest.raises(SubscriptionError) as caught:
        normalise_address(address)
    assert caught.value.context["field"] == "email"


@pytest.mark.parametrize(
    ("address", "stored"),
    [
        ("Jane@Example.com", "jane@example.com"),
        ("jane+tag@example.com", "jane+tag@example.com"),
        ("a=b@example.com", "a=b@example.com"),  # "=" alone is fine; "=?" is not
        ("joe@exämple.com", "joe@exämple.com"),
        ("jöe@example.com", "jöe@example.com"),
    ],
)
def test_ordinary_and_international_addresses_are_still_accepted(address: str, stored: str) -> None:
    assert normalise_address(address) == stored


@pytest.mark.parametrize("address", ENCODED_WORDS)
def test_header_address_refuses_encoded_words(address: str) -> None:
    with pytest.raises(UnsendableRecipient):
        header_address(address)


def test_header_address_punycodes_an_idn_domain() -> None:
    assert header_address("joe@exämple.com") == "joe@xn--exmple-cua.com"
    assert header_address("x@straße.de") == "x@xn--strae-oqa.de"  # IDNA 2008: ß is kept
    assert header_address("jane@example.com") == "jane@example.com"


def test_a_non_ascii_local_part_needs_smtputf8() -> None:
    assert header_address("jöe@exämple.com") == "jöe@xn--exmple-cua.com"
    with pytest.raises(UnsendableRecipient):
        header_address("jöe@example.com", smtputf8=False)


def _batch(*emails: str) -> Batch:
    content = Content("c", "s", "Subject", "pre", "<p>Hi</p>", "Hi")
    return Batch(content, Sender("hello@practice.test", "Practice"), [Recipient(e) for e in emails])


def test_the_message_names_the_punycode_domain_and_only_the_recipient() -> None:
    batch = _batch("joe@exämple.com")
    raw = batch.mime(batch.recipients[0]).as_bytes(policy=policy.SMTP)
    parsed = message_from_bytes(raw, policy=policy.default)
    assert [a.addr_spec for a in parsed["To"].addresses] == ["joe@xn--exmple-cua.com"]


def test_building_a_poison_recipients_message_raises_a_delivery_error_of_its_own() -> None:
    batch = _batch(ENCODED_WORDS[0])
    with pytest.raises(UnsendableRecipient) as caught:
        batch.mime(batch.recipients[0])
    assert caught.value.retryable is False
    # A header value with a line break (never built by us, but possible in data) too.
    bad = Recipient("jane@example.com", headers={"List-Unsubscribe": "<x>\r\nBcc: a@b.example"})
    with pytest.raises(UnsendableRecipient):
        _batch().mime(bad)
