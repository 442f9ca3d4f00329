"""Signed, opaque, expiring tokens for the links in every email.

A token is ``PUBLIC_ID.TIMESTAMP.SIGNATURE``: the subscriber's random ``public_id``
(never an address), the signing time and an HMAC over both, each part in URL-safe
base64 without padding. It is safe in a URL path and in the local part of the
``unsubscribe+TOKEN@domain`` address of List-Unsubscribe: letters, digits, ``-``,
``_`` and ``.`` only. Tokens are case-sensitive.

Each purpose has its own salt, so an unsubscribe token never confirms anyone. Keys
rotate: ``SECRET_KEYS`` lists them newest first; the newest signs and every key listed
still verifies, so a key can be retired once the longest-lived token signed with it has
expired (``unsubscribe_token_days``).

Signing and verifying go through itsdangerous's :class:`~itsdangerous.TimestampSigner`
with HMAC-SHA256 truncated to 128 bits: a full SHA-256 (or SHA-1) signature would push
``unsubscribe+TOKEN`` past the 64 octets RFC 5321 allows a local part. With a 22-character
public id (:func:`new_public_id`) the local part is exactly 64 octets.
:meth:`Tokens.make` is on the hot path of a newsletter (two tokens per recipient), so it
computes the very bytes ``TimestampSigner.sign`` would, with the key derived once, the
HMAC's padded key pre-absorbed and the timestamp encoded once per second.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from binascii import b2a_base64
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, get_args

from itsdangerous import BadSignature, TimestampSigner
from itsdangerous.encoding import base64_decode, base64_encode, bytes_to_int, int_to_bytes
from itsdangerous.signer import SigningAlgorithm

from nurture.exceptions import ConfigurationError, TokenError, TokenExpired

if TYPE_CHECKING:
    from nurture.settings import Settings

Purpose = Literal["confirm", "unsubscribe", "preferences"]
PURPOSES: tuple[Purpose, ...] = get_args(Purpose)

#: Bytes of HMAC-SHA256 kept in a token: 128 bits, 22 base64 characters.
SIGNATURE_BYTES = 16
#: The two links every marketing email carries, signed together. Signed ahead of time
#: (delivery.presigning), they are kept as one string: their tokens in this order,
#: joined by a space ("UNSUBSCRIBE PREFERENCES"), which mail.recipients splits again.
LINKS: tuple[Purpose, ...] = ("unsubscribe", "preferences")
#: Links signed ahead of time are used for this fraction of their lifetime, at most.
LINK_REUSE_FRACTION = 4
#: A token may be signed at most this far in the future (clocks of two hosts disagree).
CLOCK_SKEW_SECONDS = 300

_PUBLIC_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
# public_id . timestamp (at most 8 bytes) . signature; anything else is refused before
# any cryptography runs, so junk of any size or alphabet costs nothing.
_TOKEN = re.compile(r"([A-Za-z0-9_-]{1,32})\.([A-Za-z0-9_-]{1,11})\.([A-Za-z0-9_-]{22})")
_MAX_TOKEN = 32 + 1 + 11 + 1 + 22


def new_public_id() -> str:
    """A fresh random ``public_id`` (128 bits, 22 URL-safe characters) for a subscriber.

    22 characters keep ``unsubscribe+TOKEN@domain`` within RFC 5321's 64-octet local part;
    longer ids (the column allows 32) still work but make that address too long.
    """
    return secrets.token_urlsafe(16)


class _TruncatedHMAC(SigningAlgorithm):
    """HMAC-SHA256 cut to :data:`SIGNATURE_BYTES`; itsdangerous compares in constant time."""

    def get_signature(self, key: bytes, value: bytes) -> bytes:
        return hmac.digest(key, value, "sha256")[:SIGNATURE_BYTES]


# RFC 2104's pads, as translation tables (the trick Python's own hmac module uses).
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))
_URLSAFE = bytes.maketrans(b"+/", b"-_")


class _Signer(TimestampSigner):
    """A TimestampSigner for one purpose that derives each key once, not per call.

    :meth:`fast_signature` is the hot path of :meth:`Tokens.signing`: HMAC-SHA256 computed
    from SHA-256 states with the padded newest key already absorbed (RFC 2104's
    precomputation), about twice as fast as ``hmac.digest`` and the very same bytes that
    :meth:`get_signature`, and so :meth:`unsign`, compute.
    """

    def __init__(self, keys_oldest_first: list[bytes], purpose: Purpose) -> None:
        super().__init__(
            keys_oldest_first,
            salt=f"nurture.token.{purpose}",
            key_derivation="hmac",
            digest_method=hashlib.sha256,
            algorithm=_TruncatedHMAC(),
        )
        self._derived: dict[bytes, bytes] = {}
        block = self.derive_key().ljust(64, b"\0")  # 32 bytes, padded to SHA-256's block
        self._inner = hashlib.sha256(block.translate(_IPAD))
        self._outer = hashlib.sha256(block.translate(_OPAD))

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        raw = self.secret_keys[-1] if secret_key is None else secret_key
        raw = raw.encode() if isinstance(raw, str) else raw
        derived = self._derived.get(raw)
        if derived is None:
            derived = self._derived[raw] = super().derive_key(raw)
        return derived

    def fast_signature(self, value: bytes) -> str:
        """``get_signature(value)`` with the newest key, as text."""
        inner = self._inner.copy()
        inner.update(value)
        outer = self._outer.copy()
        outer.update(inner.digest())
        # 16 bytes -> 24 base64 characters ending in "=="; itsdangerous drops the padding
        # and uses the URL-safe alphabet.
        mac = b2a_base64(outer.digest()[:SIGNATURE_BYTES], newline=False)
        return mac[:-2].translate(_URLSAFE).decode()


class Tokens:
    """Makes and reads the signed tokens of confirm, unsubscribe and preferences links.

    ``secret_keys`` are newest first, as in ``SECRET_KEYS``. ``confirm_days`` and
    ``link_days`` are how long confirm and unsubscribe/preferences tokens stay valid.
    """

    def __init__(
        self, secret_keys: Sequence[str], *, confirm_days: int = 7, link_days: int = 400
    ) -> None:
        if not secret_keys or any(not key for key in secret_keys):
            raise ConfigurationError("NURTURE_SECRET_KEYS: at least one non-empty key is needed")
        # itsdangerous wants oldest -> newest and signs with the last one.
        keys = [key.encode() for key in reversed(secret_keys)]
        self._signers: dict[str, _Signer] = {p: _Signer(keys, p) for p in PURPOSES}
        self._max_age: dict[str, int] = {
            "confirm": confirm_days * 86400,
            "unsubscribe": link_days * 86400,
            "preferences": link_days * 86400,
        }
        self._ts_cache: tuple[int, str] = (-1, "")
        # Names the newest key without revealing it: links signed ahead of time with
        # another key are signed afresh (they would stop working once it is retired).
        newest = self._signers["unsubscribe"].derive_key()
        self.link_key = hmac.digest(newest, b"nurture.link-key-id", "sha256")[:8].hex()
        #: How long links signed ahead of time may be used (see links_reusable_since).
        self.link_reuse = timedelta(days=link_days) / LINK_REUSE_FRACTION

    @classmethod
    def from_settings(cls, settings: Settings) -> Tokens:
        """Tokens with the keys and lifetimes from the settings."""
        return cls(
            settings.secret_key_values(),
            confirm_days=settings.confirm_token_days,
            link_days=settings.unsubscribe_token_days,
        )

    def links_reusable_since(self, now: datetime) -> datetime:
        """Links signed ahead of time (:mod:`nurture.delivery.presigning`) go into an email
        sent at ``now`` only if signed since then, with the key named :attr:`link_key`:
        so a link in any email keeps working for at least three quarters of
        ``UNSUBSCRIBE_TOKEN_DAYS`` after it was sent."""
        return now - self.link_reuse

    def _timestamp(self, now: datetime | None) -> str:
        ts = int(time.time() if now is None else now.timestamp())
        cached_ts, encoded = self._ts_cache
        if ts != cached_ts:
            # Same encoding as TimestampSigner.sign, cached: it only changes once a second.
            encoded = base64_encode(int_to_bytes(ts)).decode()
            self._ts_cache = (ts, encoded)
        return encoded

    def make(self, purpose: Purpose, public_id: str, *, now: datetime | None = None) -> str:
        """A token for ``public_id`` signed now (or at ``now``) with the newest key.

        Raises ``ValueError`` for a ``public_id`` that is not 1-32 URL-safe characters
        (a programming error: ids come from :func:`new_public_id`) or an unknown purpose.
        """
        return self.signing((purpose,), now=now)(public_id)[0]

    def make_each(
        self, purposes: Sequence[Purpose], public_id: str, *, now: datetime | None = None
    ) -> list[str]:
        """One token per purpose for the same ``public_id`` and instant, in order."""
        return self.signing(purposes, now=now)(public_id)

    def signing(
        self, purposes: Sequence[Purpose], *, now: datetime | None = None
    ) -> Callable[[str], list[str]]:
        """A function making one token per purpose for a ``public_id``, all signed at ``now``.

        The hot path of a newsletter (an unsubscribe and a preferences link for each of
        a million recipients): the instant is encoded and the signers looked up once per
        batch, and each call is the two HMACs and little else. It raises ``ValueError``
        as :meth:`make` does.
        """
        try:
            signers = [self._signers[p].fast_signature for p in purposes]
        except KeyError as exc:
            raise ValueError(f"unknown token purpose {exc.args[0]!r}") from None
        stamp = "." + self._timestamp(now)
        valid = _PUBLIC_ID.fullmatch

        def sign(public_id: str) -> list[str]:
            if not valid(public_id):
                raise ValueError("public_id must be 1-32 characters of [A-Za-z0-9_-]")
            value = public_id + stamp
            encoded = value.encode()
            # Exactly what TimestampSigner.sign would return, computed faster.
            return [f"{value}.{signature(encoded)}" for signature in signers]

        return sign

    def read(self, purpose: Purpose, token: str, *, now: datetime | None = None) -> str:
        """The ``public_id`` inside a valid token of this purpose.

        Raises :class:`TokenExpired` when the signature is good but the token is older
        than its purpose allows (``exc.context["public_id"]`` then says whose it was,
        so the caller can offer a fresh link), and :class:`TokenError` for anything
        else: forged, tampered, malformed, signed by a retired key, or made for another
        purpose. Never raises anything else, whatever ``token`` holds.
        """
        signer = self._signers.get(purpose)
        if signer is None:
            raise TokenError("unknown token purpose", reason="purpose")
        if not isinstance(token, str) or len(token) > _MAX_TOKEN:
            raise TokenError(reason="malformed")
        match = _TOKEN.fullmatch(token)
        # Base64 leaves spare bits in the last character; insist on the canonical
        # spelling so that exactly one string is valid for each token.
        if not match or base64_encode(base64_decode(match[3])).decode() != match[3]:
            raise TokenError(reason="malformed")
        try:
            value, signed_at = signer.unsign(token, return_timestamp=True)
        except BadSignature:
            raise TokenError(reason="signature") from None
        except (ValueError, OverflowError, OSError):  # an absurd timestamp, yet signed
            raise TokenError(reason="timestamp") from None
        public_id = value.decode()
        age = (time.time() if now is None else now.timestamp()) - signed_at.timestamp()
        if age > self._max_age[purpose]:
            raise TokenExpired(public_id=public_id, purpose=purpose, signed_at=signed_at)
        if age < -CLOCK_SKEW_SECONDS:
            raise TokenError(reason="future")
        return public_id


def signed_at(token: str) -> datetime | None:
    """When a token was signed, in whole seconds (UTC); ``None`` when it has no timestamp.

    Reads the middle part of ``PUBLIC_ID.TIMESTAMP.SIGNATURE`` without checking the
    signature: verify the token with :meth:`Tokens.read` first.
    """
    try:
        seconds = bytes_to_int(base64_decode(token.split(".")[1]))
        return datetime.fromtimestamp(seconds, UTC)
    except (IndexError, ValueError, OverflowError, OSError):
        return None
