"""Batch.wire: the bytes written straight are the email package's own, byte for byte."""

from __future__ import annotations

import itertools
import re
from email import message_from_bytes, policy

import pytest

from nurture.mail.messages import (
    WIRE_POLICY,
    WIRE_POLICY_UTF8,
    Batch,
    Content,
    Recipient,
    Sender,
    UnsendableRecipient,
)

BODIES = [
    (
        '<p>Hi %%first_name|html%% café</p>\n<a href="%%confirm_url|html%%">x</a>',
        "Hi %%first_name%%\n",
    ),
    ("<p>=3D " + "long " * 100 + "</p>", "line two  \n.dot\nFrom me\nno newline at end"),
    ("", "é😀\r\nwindows line\r\n\n\ntrailing tab\t\n"),
    # A bare CR before a placeholder's line, and a placeholder alone on the last line.
    ("a\r%%first_name|html%%b\n", "Bye\n%%unsubscribe_url%%"),
    # A placeholder where the line passes 76 characters, and one at the very end.
    (
        "x" * 60 + "%%first_name|html%% " + "y" * 40 + "\r" + "%%confirm_url|html%%",
        "%%first_name%%",
    ),
]
SENDERS = [
    Sender("alex@example-practice.com", "Alex Morgan"),
    Sender("hello@bücher.example", "Bücher"),  # never straight: a non-ASCII sender
    Sender("a@b.org", "Dr. Ålex Mörgan, LMFT", "reply@b.org"),
    Sender("a@b.org", '"quoted" (comment)'),
]
SUBJECTS = ["Please confirm", "Café notes — a gentle note", "x" * 200, "a  double  space"]
ONE_CLICK = {
    "List-Unsubscribe": "<https://x.org/u/1>, <mailto:u+1@x.org>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}
#: Values that are empty or hold line breaks are left to the email package.
VALUES = [
    {"first_name": "Sam é ", "confirm_url": "https://x/c/a&b", "unsubscribe_url": "u"},
    {"first_name": "y\n", "confirm_url": "https://x/c/a\n=?x", "unsubscribe_url": ""},
    {"first_name": "Sam\r", "confirm_url": "\nx", "unsubscribe_url": "u"},
]
#: (address, extra headers, written straight?)
RECIPIENTS = [
    ("reader@example.org", {}, True),
    ("r.e+x@sub.example.org", ONE_CLICK, True),
    ("r@example.org", {"X-Long": "y" * 950}, False),
    ("r@example.org", {"X-Odd": "a  b"}, False),
    ("r@example.org", {"X-Word": "=?utf-8?q?x?="}, False),
    ("ré@example.org", {}, False),
    ("r@exämple.org", {}, False),
    ('"q l"@example.org', {}, False),
]


def _without_date(data: bytes) -> bytes:
    # Both sides read the clock; a second may turn between them.
    dated = re.sub(rb"\r\nDate: [^\r]+\r\n", b"\r\nDate: -\r\n", data, count=1)
    assert dated != data
    return dated


@pytest.mark.parametrize(
    ("bodies", "sender", "subject"), list(itertools.product(BODIES, SENDERS, SUBJECTS))
)
def test_wire_writes_what_the_email_package_writes(
    bodies: tuple[str, str], sender: Sender, subject: str
) -> None:
    content = Content("c", "s", subject, "pre", bodies[0], bodies[1], marketing=False)
    for (email, headers, straight), values in itertools.product(RECIPIENTS, VALUES):
        plain_values = all(v and "\n" not in v and "\r" not in v for v in values.values())
        straight = straight and plain_values and sender.email.isascii()
        recipient = Recipient(email, dict(values))
        recipient.headers.update(headers)
        batch = Batch(content, sender, [recipient], subject_prefix="[Test] ")
        for given in ("<1.2.3@example-practice.com>", None):
            data, message_id = batch.wire(recipient, message_id=given)
            assert message_id == (given or message_id)
            assert (batch._plain_wire(recipient, message_id) is not None) is straight
            ascii_local = email.partition("@")[0].isascii() and sender.email.isascii()
            wire = WIRE_POLICY if ascii_local else WIRE_POLICY_UTF8
            expected = batch.mime(recipient, message_id=message_id).as_bytes(policy=wire)
            assert _without_date(data) == _without_date(expected), email
            assert message_from_bytes(data, policy=policy.default)["Message-ID"] == message_id


def test_wire_refuses_what_mime_refuses() -> None:
    content = Content("c", "s", "Hello", "pre", "<p>x</p>", "x")
    bad = Recipient("=?utf-8?q?victim=40gmail.com=2C_x?=@example.org")
    batch = Batch(content, SENDERS[0], [bad])
    with pytest.raises(UnsendableRecipient):
        batch.wire(bad)
    broken = Recipient("r@example.org", headers={"X-Bad": "a\r\nBcc: victim@example.org"})
    with pytest.raises(UnsendableRecipient):
        Batch(content, SENDERS[0], [broken]).wire(broken)
