"""What a sign-up may contain: pure checks and clean-ups, no database.

Addresses are validated with email-validator (syntax always; deliverability, a DNS
lookup, only when ``CHECK_DELIVERABILITY`` is on) and then normalised to one form:
the domain in lower case (email-validator's normalisation: IDNA, Unicode NFC), and the
local part lower-cased as well. RFC 5321 lets a receiving server treat ``Jane`` and
``jane`` as two mailboxes, but no mail provider in use does, while treating them as two
subscribers would let one person hold two subscriptions and slip past a suppression.
Dots and ``+tags`` are kept: they are provider-specific, and a ``+tag`` a person chose
is theirs to keep.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from nurture.exceptions import SubscriptionError
from nurture.mail.addresses import normalise_email
from nurture.mail.recipients import tidy_spaces

#: A first name longer than this is not a first name; it is dropped, not cut.
FIRST_NAME_MAX = 40
#: Longer than any real address (RFC 5321 allows 254): refused before any parsing.
EMAIL_MAX = 320
#: The consents table's width for a form URL; a longer one is not kept.
FORM_URL_MAX = 500
USER_AGENT_MAX = 300
CONSENT_VERSION_MAX = 40
_SPACES = re.compile(r"\s+")
# Besides letters and combining marks, a name may hold spaces, apostrophes (straight or
# typographic), hyphens and full stops: "Anne-Marie", "O'Neill", "J. R.".
_NAME_PUNCTUATION = frozenset(" '\u2019-.")
# A link or an address typed as a "name" would be shown to the inbox's owner in our
# voice; "evil.example" (a full stop followed by letters, no space) reads as a domain.
_LINK_LIKE = re.compile(r"://|@|www\.|\.[^\W\d_]{2,}", re.IGNORECASE)
_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+)*")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
#: How an RFC 2047 encoded word starts; refused in a local part (see normalise_address).
_ENCODED_WORD = "=?"


@dataclass(frozen=True)
class SignUpRequest:
    """A sign-up as submitted (form or JSON): unvalidated, as the web layer received it.

    ``ip``, ``user_agent`` and ``form_url`` are consent evidence; ``consent_version`` is
    the version of the consent wording the form showed (``None``: the form did not say);
    ``channel`` is ``form`` or ``json``. :meth:`Subscriptions.sign_up` cleans every field
    before anything reaches the database.
    """

    email: str
    campaign: str
    consent: bool
    first_name: str | None = None
    timezone: str | None = None
    form_url: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    channel: str = "form"
    consent_version: str | None = None


def is_clean_text(value: object) -> bool:
    """Whether ``value`` is text the database and UTF-8 accept and a person could type.

    Refused: non-strings, control characters (NUL included; PostgreSQL refuses NUL in
    text), lone surrogates (JSON can carry them, UTF-8 cannot) and private-use or
    unassigned code points.
    """
    if not isinstance(value, str):
        return False
    if any(unicodedata.category(ch) in {"Cc", "Cs", "Co", "Cn"} for ch in value):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def normalise_address(email: object, *, check_deliverability: bool = False) -> str:
    """The canonical form of a valid address; raises :class:`SubscriptionError` otherwise.

    The error's ``field`` is ``"email"`` and its message is safe to show the person.
    A local part holding ``=?`` (the start of an RFC 2047 encoded word) is refused: mail
    libraries decode it in ``To:``, so it could name other people there.
    """
    if (
        not isinstance(email, str)
        or not email.strip()
        or len(email) > EMAIL_MAX
        or not is_clean_text(email)
    ):
        raise SubscriptionError("Please enter a valid email address.", field="email")
    try:
        info = validate_email(email.strip(), check_deliverability=check_deliverability)
    except EmailNotValidError:
        raise SubscriptionError("Please enter a valid email address.", field="email") from None
    if _ENCODED_WORD in info.local_part:
        # RFC 5322 allows "=?" in a local part, but a mail library reading the To: header
        # decodes "=?utf-8?q?victim=40gmail.com=2C_x?=" as an RFC 2047 encoded word:
        # third parties in To:, or a parse error. No real mailbox is spelt like that.
        raise SubscriptionError("Please enter a valid email address.", field="email")
    return normalise_email(info.normalized)


def clean_first_name(value: object) -> str | None:
    """A plausible first name, or ``None``: anything else is dropped, never an error.

    Until an address is confirmed its name was typed by whoever filled the form, and it
    may be shown back (a page, an email), so only a name that looks like one is kept:
    letters, combining marks, spaces, apostrophes, hyphens and full stops, at most
    :data:`FIRST_NAME_MAX` characters, at least one letter, and nothing that reads as a
    link or an address (``://``, ``@``, ``www.``, ``evil.example``). Runs of white space
    become one space, by :func:`~nurture.mail.recipients.tidy_spaces`, the tidying every
    greeting applies too. Raises :class:`SubscriptionError` (``field="first_name"``) only
    for a value that is not text at all.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise SubscriptionError("Please check your first name.", field="first_name")
    if len(value) > FIRST_NAME_MAX * 4:  # not worth normalising
        return None
    name = tidy_spaces(unicodedata.normalize("NFC", value))
    if not name or len(name) > FIRST_NAME_MAX or _LINK_LIKE.search(name):
        return None
    if not any(ch.isalpha() for ch in name):
        return None
    for ch in name:
        if ch not in _NAME_PUNCTUATION and unicodedata.category(ch)[0] not in "LM":
            return None
    return name


def clean_timezone(value: object) -> str | None:
    """An IANA zone name the system knows, or ``None`` (the practice's zone then applies).

    Only the shape of a zone name is accepted (``Area/City``): never a path.
    """
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        return None
    name = value.strip()
    if not _ZONE.fullmatch(name):
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
    return name


def clean_form_url(value: object) -> str | None:
    """The address of the page a form was on, as consent evidence; ``None`` when unusable.

    Only an absolute ``http``/``https`` URL of clean text within :data:`FORM_URL_MAX`
    characters is kept, and only its scheme, host and path: a query string or a user
    name may carry personal data (an address in a tracking parameter).
    """
    if not isinstance(value, str) or len(value) > 4 * FORM_URL_MAX or not is_clean_text(value):
        return None
    if any(ch.isspace() for ch in value):
        return None
    try:
        parts = urlsplit(value)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    netloc = host if port is None else f"{host}:{port}"
    if ":" in host:  # an IPv6 literal
        netloc = f"[{host}]" if port is None else f"[{host}]:{port}"
    url = urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", "", ""))
    return url if len(url) <= FORM_URL_MAX else None


def clean_user_agent(value: object) -> str | None:
    """The user agent as evidence: clean text, cut to :data:`USER_AGENT_MAX` characters."""
    if not isinstance(value, str):
        return None
    kept = "".join(ch if is_clean_text(ch) else " " for ch in value[: USER_AGENT_MAX * 2])
    return _SPACES.sub(" ", kept).strip()[:USER_AGENT_MAX] or None


def clean_consent_version(value: object) -> str | None:
    """A consent version as a form may state it, or ``None`` when absent or malformed."""
    if not isinstance(value, str):
        return None
    version = value.strip()
    if len(version) > CONSENT_VERSION_MAX or not _VERSION.fullmatch(version):
        return None
    return version


def lookup_address(email: str) -> str:
    """The stored form of ``email`` for finding someone (show, erase, booked); a
    malformed one is still looked up as typed."""
    try:
        return normalise_address(email)
    except SubscriptionError:
        return normalise_email(email)
