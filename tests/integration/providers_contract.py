"""The contract every delivery provider keeps, written once and rerun for each.

A test module subclasses :class:`ProviderContract` and supplies two fixtures:
``provider`` (ready to send) and ``mailbox`` (a callable returning what actually
arrived, as :class:`Mail` objects, read from the provider's real destination: the
folder, the SMTP server, the fake SendGrid).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from nurture.mail.messages import Batch, Content, Recipient, Sender, placeholder
from nurture.providers.base import Provider

#: Names chosen to catch escaping and encoding mistakes: "&" and "'" differ in HTML.
FIRST_NAMES = ("Ann", "Zoë", "Sam & Jo", "O'Brien")


@dataclass(frozen=True)
class Mail:
    """One delivered message, whatever carried it."""

    to: str
    sender: str
    subject: str
    text: str
    html: str
    headers: dict[str, str] = field(default_factory=dict)


def make_content(campaign: str = "what-i-actually-do") -> Content:
    """A small compiled step with every per-recipient placeholder."""
    body_html = (
        "<html><body><p>Hello {first},</p><p>A short note.</p>"
        '<p><a href="{unsub}">Unsubscribe</a> · <a href="{prefs}">Preferences</a></p>'
        "</body></html>"
    ).format(
        first=placeholder("first_name", for_html=True),
        unsub=placeholder("unsubscribe_url", for_html=True),
        prefs=placeholder("preferences_url", for_html=True),
    )
    body_text = (
        "Hello {first},\n\nA short note.\n\nUnsubscribe: {unsub}\nPreferences: {prefs}\n".format(
            first=placeholder("first_name", for_html=False),
            unsub=placeholder("unsubscribe_url", for_html=False),
            prefs=placeholder("preferences_url", for_html=False),
        )
    )
    return Content(
        campaign=campaign,
        step="01-welcome",
        subject="A first note from the practice",
        preheader="Something to read with a cup of tea",
        html=body_html,
        text=body_text,
    )


def make_recipient(
    i: int, first_name: str | None = None, *, domain: str = "example.com"
) -> Recipient:
    """Recipient ``i`` with their own links, List-Unsubscribe headers and outbox id."""
    # As long as a real token (public id, time, signature): the headers cannot fold.
    token = f"tok{i:06d}-opaque-" + "x" * 48
    unsubscribe = f"https://practice.test/unsubscribe/{token}"
    return Recipient(
        email=f"reader{i}@{domain}",
        values={
            "first_name": first_name or FIRST_NAMES[i % len(FIRST_NAMES)],
            "unsubscribe_url": unsubscribe,
            "preferences_url": f"https://practice.test/preferences/{token}",
        },
        headers={
            "List-Unsubscribe": f"<{unsubscribe}>, <mailto:unsubscribe+{token}@practice.test>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        custom_args={"outbox_id": str(1000 + i)},
        outbox_id=1000 + i,
    )


def make_batch(count: int = 3, *, content: Content | None = None) -> Batch:
    return Batch(
        content=content or make_content(),
        sender=Sender("hello@practice.test", "Alex Morgan", reply_to="alex@practice.test"),
        recipients=[make_recipient(i) for i in range(count)],
    )


def mail_from_mime(data: bytes) -> Mail:
    """A :class:`Mail` from a complete RFC 5322 message."""
    msg = message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    text_part = msg.get_body(("plain",))
    html_part = msg.get_body(("html",))
    assert text_part is not None and html_part is not None
    return Mail(
        to=str(msg["To"]),
        sender=msg["From"].addresses[0].addr_spec,
        subject=str(msg["Subject"]),
        text=text_part.get_content(),
        html=html_part.get_content(),
        headers={k: str(v) for k, v in msg.items()},
    )


class ProviderContract:
    """What every provider must do; subclasses provide ``provider`` and ``mailbox``."""

    @pytest.fixture
    def provider(self) -> Provider:
        raise NotImplementedError

    @pytest.fixture
    def mailbox(self) -> Callable[[], list[Mail]]:
        raise NotImplementedError

    def test_each_recipient_gets_exactly_their_own_message(
        self, provider: Provider, mailbox: Callable[[], list[Mail]]
    ) -> None:
        batch = make_batch(3)
        results = provider.send(batch)

        assert [r.recipient for r in results] == batch.recipients
        assert [r.outcome for r in results] == ["sent"] * 3
        assert all(r.message_id for r in results)
        mails = mailbox()
        assert sorted(m.to for m in mails) == sorted(r.email for r in batch.recipients)
        by_address = {m.to: m for m in mails}
        for recipient in batch.recipients:
            mail = by_address[recipient.email]
            first = recipient.values["first_name"]
            unsubscribe = recipient.values["unsubscribe_url"]
            assert mail.sender == "hello@practice.test"
            assert mail.subject == batch.subject
            assert f"Hello {first}," in mail.text
            assert f"Hello {html.escape(first)}," in mail.html
            assert f"Unsubscribe: {unsubscribe}" in mail.text
            assert f'href="{html.escape(unsubscribe)}"' in mail.html
            assert mail.headers["List-Unsubscribe"] == recipient.headers["List-Unsubscribe"]
            assert mail.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert "%%" not in mail.text + mail.html
            others = [r.values["unsubscribe_url"] for r in batch.recipients if r is not recipient]
            assert not any(url in mail.text or url in mail.html for url in others)

    def test_an_empty_batch_sends_nothing(
        self, provider: Provider, mailbox: Callable[[], list[Mail]]
    ) -> None:
        assert provider.send(make_batch(0)) == []
        assert mailbox() == []

    def test_a_subject_prefix_is_sent(
        self, provider: Provider, mailbox: Callable[[], list[Mail]]
    ) -> None:
        batch = make_batch(1)
        batch = Batch(batch.content, batch.sender, batch.recipients, subject_prefix="[TEST] ")
        assert [r.outcome for r in provider.send(batch)] == ["sent"]
        assert [m.subject for m in mailbox()] == ["[TEST] A first note from the practice"]
