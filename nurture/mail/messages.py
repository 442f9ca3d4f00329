"""Fully rendered messages: what rendering produces and providers consume.

A step is compiled once into :class:`Content` whose HTML and text hold placeholders
(``%%name%%`` in the text, ``%%name|html%%`` in the HTML, already escaped for it; the
links, which never need escaping, take ``%%name%%`` in the HTML too).
Each :class:`Recipient` carries the values for those placeholders, so personalising is
string substitution: cheap for SMTP and the folder, and free for SendGrid, which does
the substitution itself from ``personalizations[].substitutions``.
"""

from __future__ import annotations

import html
import re
import secrets
import time
from dataclasses import dataclass, field
from email import errors, policy
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage, MIMEPart
from email.utils import formatdate, make_msgid
from functools import cached_property
from typing import Any

import idna

from nurture.exceptions import DeliveryError
from nurture.mail.bodies import PLACEHOLDER, fill, fill_quoted, quoted_lines, quoted_printable

#: The per-recipient fields a compiled step may hold.
FIELDS = ("first_name", "unsubscribe_url", "preferences_url", "confirm_url")
# A dot-atom local part and an ASCII domain: what nearly every address is, and what
# Python's header parser reads back unchanged as long as no "=?" starts an RFC 2047
# encoded word. Anything else takes the slow path of header_address.
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
)
_ENCODED_WORD = "=?"
# What the email package writes back exactly as given in a header it does not parse:
# printable ASCII words separated by single spaces (no folding below 998 characters).
_PLAIN_VALUE = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9-]+")
_PLAIN_MESSAGE_ID = re.compile(r"<[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+>")


class _Headers(HeaderRegistry):
    """The email package's header registry, minus its habit of creating a new class
    each time a header is made (two dozen per message): the class for a name is made
    once. The headers are the very same."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


#: How every message is written. Headers are folded at 998 characters, RFC 5322's
#: limit, not Python's default 78: ``List-Unsubscribe`` holds two long URLs with no
#: place to fold, and Python would then encode the whole header as RFC 2047 words,
#: which mail clients do not decode there, so their unsubscribe button would vanish.
MESSAGE_POLICY = policy.default.clone(max_line_length=998, header_factory=_Headers())
#: The same rule on the wire (CRLF), ASCII and SMTPUTF8.
WIRE_POLICY = policy.SMTP.clone(max_line_length=998, header_factory=_Headers())
WIRE_POLICY_UTF8 = policy.SMTPUTF8.clone(max_line_length=998, header_factory=_Headers())


class UnsendableRecipient(DeliveryError):
    """This recipient's message cannot be written: their address or their headers.

    Never retryable: the same data gives the same answer. Providers turn it into a
    ``failed`` result for that recipient alone.
    """


def header_address(email: str, *, smtputf8: bool = True) -> str:
    """``email`` as it goes into ``To:`` and the SMTP envelope; raises :class:`UnsendableRecipient`.

    The domain is written in punycode (IDNA 2008 with UTS 46, as email-validator
    normalises it), which every server accepts. A non-ASCII local part can only travel
    with SMTPUTF8 (RFC 6531); ``smtputf8=False`` says the backend cannot offer it. An
    address that Python's own header parser would read back as anything other than
    this one mailbox (an RFC 2047 encoded word such as
    ``=?utf-8?q?victim=40gmail.com=2C_x?=@…`` decodes into other people's addresses) is
    refused: addresses stored before sign-up refused them may still be in the database.
    """
    if _ENCODED_WORD not in email and _PLAIN_ADDRESS.fullmatch(email):
        return email  # nearly every address, twice per recipient on a newsletter's path
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        raise UnsendableRecipient("not an email address")
    if _ENCODED_WORD in local:
        raise UnsendableRecipient("the address's local part holds an RFC 2047 encoded word")
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            raise UnsendableRecipient("the address's domain is not a valid IDN") from None
    if not local.isascii() and not smtputf8:
        raise UnsendableRecipient(
            "a non-ASCII local part needs SMTPUTF8, which this delivery backend cannot send"
        )
    address = f"{local}@{domain}"
    try:
        header = policy.default.header_factory("To", address)
        read_back = [mailbox.addr_spec for mailbox in header.addresses]
    except (ValueError, IndexError, errors.HeaderParseError):
        read_back = []
    if read_back != [address]:
        raise UnsendableRecipient("the address does not read back as itself in a header")
    return address


def placeholder(name: str, *, for_html: bool) -> str:
    return f"%%{name}|html%%" if for_html else f"%%{name}%%"


def substitutions(values: dict[str, str]) -> dict[str, str]:
    """Every placeholder string -> its value, HTML-escaped for the ``|html`` form."""
    out: dict[str, str] = {}
    for name, value in values.items():
        out[placeholder(name, for_html=False)] = value
        out[placeholder(name, for_html=True)] = html.escape(value, quote=True)
    return out


@dataclass(frozen=True)
class Content:
    """One compiled step (or newsletter), shared by every recipient of a batch."""

    campaign: str
    step: str
    subject: str
    preheader: str
    html: str
    text: str
    marketing: bool = True

    @cached_property
    def _html_parts(self) -> list[str]:
        return PLACEHOLDER.split(self.html)

    @cached_property
    def _text_parts(self) -> list[str]:
        return PLACEHOLDER.split(self.text)

    def personalise(self, values: dict[str, str]) -> tuple[str, str]:
        """(html, text) for one recipient; unknown placeholders are left as they are."""
        return fill(self._html_parts, values, True), fill(self._text_parts, values, False)

    def quoted(self, values: dict[str, str]) -> tuple[str, str]:
        """(html, text) for one recipient as quoted-printable (see ``bodies.quoted_printable``).

        Only the lines holding a placeholder are encoded per recipient: the encoding
        works line by line, so the others are encoded once, with the step.
        """
        return fill_quoted(self._html_lines, values, True), fill_quoted(
            self._text_lines, values, False
        )

    @cached_property
    def _html_lines(self) -> list[str | list[str]]:
        return quoted_lines(self.html)

    @cached_property
    def _text_lines(self) -> list[str | list[str]]:
        return quoted_lines(self.text)


@dataclass(slots=True)
class Recipient:
    """One addressee of a batch, with everything personal to them.

    Not frozen: a frozen dataclass pays ``object.__setattr__`` per field at creation,
    and a million of these are made per newsletter. Treat instances as read-only.
    """

    email: str
    values: dict[str, str] = field(default_factory=dict)
    #: Extra headers for this recipient only (List-Unsubscribe and its -Post).
    headers: dict[str, str] = field(default_factory=dict)
    #: Echoed back by the provider's webhooks; carries the outbox id.
    custom_args: dict[str, str] = field(default_factory=dict)
    outbox_id: int | None = None


@dataclass(frozen=True)
class Sender:
    email: str
    name: str
    reply_to: str | None = None


@dataclass(frozen=True)
class Batch:
    """Recipients sharing one compiled content; providers send it as they can."""

    content: Content
    sender: Sender
    recipients: list[Recipient]
    subject_prefix: str = ""

    @property
    def subject(self) -> str:
        return self.subject_prefix + self.content.subject

    @cached_property
    def _shared_headers(self) -> dict[str, Any]:
        """The headers every message of the batch shares, parsed once: the email
        package parses a header each time one is set, unless it is given one it made."""
        make = MESSAGE_POLICY.header_factory
        headers = {
            "From": make("From", Address(self.sender.name, addr_spec=self.sender.email)),
            "Subject": make("Subject", self.subject),
        }
        if self.sender.reply_to:
            headers["Reply-To"] = make("Reply-To", self.sender.reply_to)
        return headers

    def mime(self, recipient: Recipient, *, message_id: str | None = None) -> EmailMessage:
        """The complete MIME message for one recipient, exactly as SMTP sends it.

        Raises :class:`UnsendableRecipient` when this recipient's address or headers
        cannot be written (see :func:`header_address`); providers build each message
        inside that recipient's own error handling, so it fails alone.
        """
        html_body, text_body = self.content.personalise(recipient.values)
        msg = EmailMessage(policy=MESSAGE_POLICY)
        shared = self._shared_headers
        msg["From"] = shared["From"]
        msg["To"] = header_address(recipient.email)
        if self.sender.reply_to:
            msg["Reply-To"] = shared["Reply-To"]
        msg["Subject"] = shared["Subject"]
        msg["Date"] = _date_header()
        msg["Message-ID"] = message_id or self._new_message_id()
        try:
            for name, value in recipient.headers.items():
                if not _PLAIN_NAME.fullmatch(name):  # a line break would start a header
                    raise ValueError(f"not a header name: {name!r}")
                msg[name] = value
        except (ValueError, errors.MessageError) as exc:  # a line break in a value
            raise UnsendableRecipient(f"a header cannot be written: {exc}") from None
        # multipart/alternative: the text, then the HTML, each UTF-8 and quoted-printable,
        # as set_content and add_alternative make it, with the structure's headers made
        # once: parsing them again for every message was half the cost of writing one.
        boundary = self._boundary
        if boundary in text_body or boundary in html_body:
            boundary = ""  # never: but then the generator picks one that is not there
        msg["MIME-Version"] = _STRUCTURE["MIME-Version"]
        msg["Content-Type"] = self._multipart if boundary else _STRUCTURE["multipart"]
        msg.set_payload([_text_part(text_body, "plain"), _text_part(html_body, "html")])
        return msg

    def wire(self, recipient: Recipient, *, message_id: str | None = None) -> tuple[bytes, str]:
        """The message for one recipient as it travels (CRLF line ends), and its
        Message-ID; raises :class:`UnsendableRecipient` as :meth:`mime` does.

        The bytes are exactly those of ``mime(...).as_bytes()`` under the wire policy.
        Nearly every message (an ASCII address, plain headers) is written straight to
        bytes: the email package parsing each header as it is set and folding it again
        as it is written was the larger part of a sign-up's work. Anything else is
        written by the email package.
        """
        written = self._plain_wire(recipient, message_id)
        if written is not None:
            return written
        message = self.mime(recipient, message_id=message_id)
        # Never in what travels, as smtplib's send_message would strip them.
        del message["Bcc"], message["Resent-Bcc"]
        # A non-ASCII local part (or sender) is written as UTF-8 (RFC 6532), as an
        # SMTPUTF8 server receives it; an RFC 2047 encoded word in an address would name
        # another mailbox.
        ascii_local = recipient.email.partition("@")[0].isascii() and self._ascii_sender
        data = message.as_bytes(policy=WIRE_POLICY if ascii_local else WIRE_POLICY_UTF8)
        return data, str(message["Message-ID"])

    def _plain_wire(self, recipient: Recipient, message_id: str | None) -> tuple[bytes, str] | None:
        """:meth:`wire`'s bytes written directly, or ``None`` when anything in this
        message is not plain enough to be sure of writing it as the email package does."""
        email = recipient.email
        if _ENCODED_WORD in email or not _PLAIN_ADDRESS.fullmatch(email) or len(email) > 900:
            return None
        if not self._ascii_sender:
            return None
        for value in recipient.values.values():
            # Content.quoted encodes a filled line on its own: a value that is empty or
            # holds a line break would move a line break across it.
            if not value or "\n" in value or "\r" in value:
                return None
        lines = [self._wire_from, f"To: {email}\r\n", self._wire_subject, _date_line()]
        message_id = message_id or self._new_message_id()
        if not _PLAIN_MESSAGE_ID.fullmatch(message_id) or len(message_id) > 900:
            return None
        lines.append(f"Message-ID: {message_id}\r\n")
        for name, value in recipient.headers.items():
            if (
                name.lower() in _PARSED_HEADERS  # the email package checks these its own way
                or not _PLAIN_NAME.fullmatch(name)
                or not _PLAIN_VALUE.fullmatch(value)
                or _ENCODED_WORD in value
                or len(name) + len(value) > 900
            ):
                return None
            lines.append(f"{name}: {value}\r\n")
        html_body, text_body = self.content.quoted(recipient.values)
        # No part can hold the boundary: quoted-printable writes its "=" as "=3D".
        boundary = self._boundary
        lines += (
            f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="{boundary}"'
            f"\r\n\r\n--{boundary}\r\n",
            _PART_HEAD["plain"],
            text_body.replace("\n", "\r\n"),
            f"\r\n--{boundary}\r\n",
            _PART_HEAD["html"],
            html_body.replace("\n", "\r\n"),
            f"\r\n--{boundary}--\r\n",
        )
        return "".join(lines).encode("ascii"), message_id

    def _new_message_id(self) -> str:
        return make_msgid(domain=self.sender.email.rpartition("@")[2])

    @cached_property
    def _ascii_sender(self) -> bool:
        reply_to = self.sender.reply_to or ""
        return self.sender.email.isascii() and reply_to.isascii()

    @cached_property
    def _wire_from(self) -> str:
        return self._shared_headers["From"].fold(policy=WIRE_POLICY)

    @cached_property
    def _wire_subject(self) -> str:
        # Reply-To, when there is one, comes between To and Subject (see mime).
        shared = self._shared_headers
        reply_to = shared["Reply-To"].fold(policy=WIRE_POLICY) if self.sender.reply_to else ""
        return reply_to + shared["Subject"].fold(policy=WIRE_POLICY)

    @cached_property
    def _boundary(self) -> str:
        # The form the email package gives its own boundaries; one per batch.
        return f"==============={secrets.randbelow(10**19):019d}=="

    @cached_property
    def _multipart(self) -> Any:
        value = f'multipart/alternative; boundary="{self._boundary}"'
        return MESSAGE_POLICY.header_factory("Content-Type", value)


_date: tuple[int, Any, str] = (-1, None, "")


def _date_header() -> Any:
    """This second's ``Date`` header, made (parsed) once a second, not once a message."""
    return _this_second()[1]


def _date_line() -> str:
    """This second's ``Date`` header as written on the wire."""
    return _this_second()[2]


def _this_second() -> tuple[int, Any, str]:
    global _date
    second = int(time.time())
    if _date[0] != second:
        header = MESSAGE_POLICY.header_factory("Date", formatdate(second, usegmt=True))
        _date = (second, header, header.fold(policy=WIRE_POLICY))
    return _date


def _text_part(body: str, subtype: str) -> MIMEPart:
    """A text part as ``set_content(body, subtype, charset="utf-8", cte="quoted-printable")``
    makes it (email.contentmanager), with headers made once."""
    part = MIMEPart(policy=MESSAGE_POLICY)
    part["Content-Type"] = _STRUCTURE[subtype]
    part["Content-Transfer-Encoding"] = _STRUCTURE["quoted-printable"]
    part.set_payload(quoted_printable(body))
    return part


_STRUCTURE = {
    name: MESSAGE_POLICY.header_factory(header, value)
    for name, header, value in (
        ("MIME-Version", "MIME-Version", "1.0"),
        ("multipart", "Content-Type", "multipart/alternative"),
        ("plain", "Content-Type", 'text/plain; charset="utf-8"'),
        ("html", "Content-Type", 'text/html; charset="utf-8"'),
        ("quoted-printable", "Content-Transfer-Encoding", "quoted-printable"),
    )
}

#: A text part's headers and the blank line after them, as the email package writes them.
_PART_HEAD = {
    subtype: _STRUCTURE[subtype].fold(policy=WIRE_POLICY)
    + _STRUCTURE["quoted-printable"].fold(policy=WIRE_POLICY)
    + "\r\n"
    for subtype in ("plain", "html")
}
#: Headers the email package parses (addresses, dates, ids, MIME): a recipient's extra
#: header by one of these names is left to it.
_PARSED_HEADERS = frozenset(HeaderRegistry().registry)
