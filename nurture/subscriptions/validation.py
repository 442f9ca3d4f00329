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
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from nurture.exceptions import SubscriptionError
from nurture.tokens import normalise_email

FIRST_NAME_MAX = 100
#: Longer than any real address (RFC 5321 allows 254): refused before any parsing.
EMAIL_MAX = 320
_SPACES = re.compile(r"\s+")
# Bidirectional overrides and isolates could make a name display as something else.
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F)}


@dataclass(frozen=True)
class SignUpRequest:
    """A sign-up as submitted (form or JSON): unvalidated, as the web layer received it.

    ``ip``, ``user_agent`` and ``form_url`` are consent evidence; ``channel`` is ``form``
    or ``json``.
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


def normalise_address(email: object, *, check_deliverability: bool = False) -> str:
    """The canonical form of a valid address; raises :class:`SubscriptionError` otherwise.

    The error's ``field`` is ``"email"`` and its message is safe to show the person.
    """
    if not isinstance(email, str) or not email.strip() or len(email) > EMAIL_MAX:
        raise SubscriptionError("Please enter a valid email address.", field="email")
    try:
        info = validate_email(email.strip(), check_deliverability=check_deliverability)
    except EmailNotValidError:
        raise SubscriptionError("Please enter a valid email address.", field="email") from None
    return normalise_email(info.normalized)


def clean_first_name(value: object) -> str | None:
    """Trimmed, single-spaced, without control characters, at most 100 characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise SubscriptionError("Please check your first name.", field="first_name")
    kept = "".join(
        " " if ch in "\t\r\n" else ch
        for ch in unicodedata.normalize("NFC", value)
        if ch in "\t\r\n"
        or (unicodedata.category(ch) not in {"Cc", "Cs", "Co", "Cn"} and ch not in _BIDI)
    )
    name = _SPACES.sub(" ", kept).strip()[:FIRST_NAME_MAX].strip()
    return name or None


def clean_timezone(value: object) -> str | None:
    """An IANA zone name the system knows, or ``None`` (the practice's zone then applies)."""
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        return None
    name = value.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
    return name
