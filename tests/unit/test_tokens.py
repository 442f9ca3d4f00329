"""Signed link tokens (nurture.mail.tokens)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from itsdangerous.encoding import base64_decode, base64_encode

from nurture.exceptions import ConfigurationError, TokenError, TokenExpired
from nurture.mail.tokens import PURPOSES, Tokens, new_public_id, signed_at
from nurture.settings import Settings

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
KEYS = ["key-newest", "key-older"]


@pytest.fixture
def tokens() -> Tokens:
    return Tokens(KEYS, confirm_days=7, link_days=400)


@pytest.fixture
def public_id() -> str:
    return new_public_id()


class TestRoundTrip:
    @pytest.mark.parametrize("purpose", PURPOSES)
    def test_reads_back_the_public_id(self, tokens: Tokens, public_id: str, purpose: str) -> None:
        token = tokens.make(purpose, public_id, now=NOW)  # type: ignore[arg-type]
        assert tokens.read(purpose, token, now=NOW) == public_id  # type: ignore[arg-type]

    def test_without_now_uses_the_clock(self, tokens: Tokens, public_id: str) -> None:
        assert tokens.read("confirm", tokens.make("confirm", public_id)) == public_id

    def test_safe_in_urls_and_an_email_local_part(self, tokens: Tokens) -> None:
        for _ in range(500):
            token = tokens.make("unsubscribe", new_public_id(), now=NOW)
            assert re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+", token)
            # RFC 5321: a local part is at most 64 octets.
            assert len(f"unsubscribe+{token}") <= 64

    def test_opaque_payload_is_the_public_id_only(self, tokens: Tokens) -> None:
        token = tokens.make("unsubscribe", "abc_DEF-123", now=NOW)
        assert token.startswith("abc_DEF-123.")

    def test_same_bytes_as_itsdangerous_timestamp_signer(
        self, tokens: Tokens, public_id: str
    ) -> None:
        signer = tokens._signers["preferences"]
        signer.get_timestamp = lambda: int(NOW.timestamp())  # type: ignore[method-assign]
        assert tokens.make("preferences", public_id, now=NOW) == signer.sign(public_id).decode()

    def test_make_each_equals_one_make_per_purpose(self, tokens: Tokens, public_id: str) -> None:
        made = tokens.make_each(("unsubscribe", "preferences"), public_id, now=NOW)
        assert made == [
            tokens.make("unsubscribe", public_id, now=NOW),
            tokens.make("preferences", public_id, now=NOW),
        ]
        assert tokens.read("preferences", made[1], now=NOW) == public_id
        with pytest.raises(TokenError):
            tokens.read("unsubscribe", made[1], now=NOW)  # each keeps its own purpose

    def test_refuses_an_unsafe_public_id(self, tokens: Tokens) -> None:
        for bad in ["", "a+b", "a/b", "a.b", "x" * 33, "jane@example.com", "é"]:
            with pytest.raises(ValueError):
                tokens.make("confirm", bad, now=NOW)

    def test_from_settings(self, settings: Settings, public_id: str) -> None:
        tokens = Tokens.from_settings(settings)
        token = tokens.make("confirm", public_id, now=NOW)
        later = NOW + timedelta(days=settings.confirm_token_days, seconds=1)
        with pytest.raises(TokenExpired):
            tokens.read("confirm", token, now=later)
        assert Tokens(["test-key-newest"]).read("confirm", token, now=NOW) == public_id


class TestForgery:
    def test_forged_signature(self, tokens: Tokens, public_id: str) -> None:
        token = tokens.make("unsubscribe", public_id, now=NOW)
        value, _, _ = token.rpartition(".")
        forged = value + "." + base64_encode(b"\x00" * 16).decode()
        with pytest.raises(TokenError):
            tokens.read("unsubscribe", forged, now=NOW)

    def test_signed_with_an_unknown_key(self, public_id: str) -> None:
        token = Tokens(["attacker"]).make("unsubscribe", public_id, now=NOW)
        with pytest.raises(TokenError) as info:
            Tokens(KEYS).read("unsubscribe", token, now=NOW)
        assert not isinstance(info.value, TokenExpired)

    def test_tampered_payload(self, tokens: Tokens) -> None:
        token = tokens.make("unsubscribe", "subscriberA", now=NOW)
        with pytest.raises(TokenError):
            tokens.read("unsubscribe", "subscriberB" + token[len("subscriberA") :], now=NOW)

    def test_tampered_timestamp(self, tokens: Tokens, public_id: str) -> None:
        token = tokens.make("confirm", public_id, now=NOW)
        pid, stamp, sig = token.split(".")
        newer = tokens.make("confirm", public_id, now=NOW + timedelta(days=30)).split(".")[1]
        assert newer != stamp
        with pytest.raises(TokenError):
            tokens.read("confirm", f"{pid}.{newer}.{sig}", now=NOW + timedelta(days=30))

    def test_every_single_character_change_fails(self, tokens: Tokens, public_id: str) -> None:
        token = tokens.make("unsubscribe", public_id, now=NOW)
        for i, ch in enumerate(token):
            for other in ("A", "z", "0", "-", "_", "."):
                if other != ch:
                    changed = token[:i] + other + token[i + 1 :]
                    with pytest.raises(TokenError):
                        tokens.read("unsubscribe", changed, now=NOW)

    def test_only_the_canonical_signature_spelling_is_valid(
        self, tokens: Tokens, public_id: str
    ) -> None:
        # The last base64 character carries spare bits that decoders ignore.
        token = tokens.make("unsubscribe", public_id, now=NOW)
        value, _, sig = token.rpartition(".")
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        base = alphabet.index(sig[-1]) & ~0b1111
        for spare in range(1, 16):
            variant = sig[:-1] + alphabet[base | spare]
            assert base64_decode(variant) == base64_decode(sig)
            with pytest.raises(TokenError):
                tokens.read("unsubscribe", f"{value}.{variant}", now=NOW)


class TestPurpose:
    @pytest.mark.parametrize("made", PURPOSES)
    @pytest.mark.parametrize("used", PURPOSES)
    def test_a_token_only_serves_its_purpose(
        self, tokens: Tokens, public_id: str, made: str, used: str
    ) -> None:
        token = tokens.make(made, public_id, now=NOW)  # type: ignore[arg-type]
        if made == used:
            assert tokens.read(used, token, now=NOW) == public_id  # type: ignore[arg-type]
        else:
            with pytest.raises(TokenError) as info:
                tokens.read(used, token, now=NOW)  # type: ignore[arg-type]
            assert not isinstance(info.value, TokenExpired)

    def test_unknown_purpose(self, tokens: Tokens, public_id: str) -> None:
        token = tokens.make("confirm", public_id, now=NOW)
        with pytest.raises(TokenError):
            tokens.read("login", token, now=NOW)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            tokens.make("login", public_id, now=NOW)  # type: ignore[arg-type]


class TestExpiry:
    def test_confirm_expires_after_its_days(self, tokens: Tokens, public_id: str) -> None:
        token = tokens.make("confirm", public_id, now=NOW)
        assert tokens.read("confirm", token, now=NOW + timedelta(days=7)) == public_id
        with pytest.raises(TokenExpired) as info:
            tokens.read("confirm", token, now=NOW + timedelta(days=7, seconds=1))
        # Whose it was, so that the page can offer a fresh confirmation email.
        assert info.value.context["public_id"] == public_id

    @pytest.mark.parametrize("purpose", ["unsubscribe", "preferences"])
    def test_links_last_at_least_60_days(
        self, tokens: Tokens, public_id: str, purpose: str
    ) -> None:
        token = tokens.make(purpose, public_id, now=NOW)  # type: ignore[arg-type]
        for days in (8, 60, 400):
            later = NOW + timedelta(days=days)
            assert tokens.read(purpose, token, now=later) == public_id  # type: ignore[arg-type]
        with pytest.raises(TokenExpired):
            tokens.read(purpose, token, now=NOW + timedelta(days=401))  # type: ignore[arg-type]

    def test_expired_token_made_without_sleeping(self, tokens: Tokens, public_id: str) -> None:
        token = tokens.make("confirm", public_id, now=datetime.now(UTC) - timedelta(days=8))
        with pytest.raises(TokenExpired):
            tokens.read("confirm", token)

    def test_expired_and_forged_is_just_invalid(self, tokens: Tokens, public_id: str) -> None:
        token = Tokens(["other"]).make("confirm", public_id, now=NOW)
        with pytest.raises(TokenError) as info:
            tokens.read("confirm", token, now=NOW + timedelta(days=30))
        assert not isinstance(info.value, TokenExpired)

    def test_from_the_future(self, tokens: Tokens, public_id: str) -> None:
        token = tokens.make("confirm", public_id, now=NOW + timedelta(minutes=2))
        assert tokens.read("confirm", token, now=NOW) == public_id  # clock skew tolerated
        token = tokens.make("confirm", public_id, now=NOW + timedelta(days=1))
        with pytest.raises(TokenError):
            tokens.read("confirm", token, now=NOW)


class TestRotation:
    def test_old_key_still_verifies_after_a_new_one_is_put_first(self, public_id: str) -> None:
        before = Tokens(["key-1"])
        token = before.make("unsubscribe", public_id, now=NOW)
        after = Tokens(["key-2", "key-1"])
        assert after.read("unsubscribe", token, now=NOW) == public_id

    def test_the_newest_key_signs(self, public_id: str) -> None:
        token = Tokens(["key-2", "key-1"]).make("unsubscribe", public_id, now=NOW)
        assert Tokens(["key-2"]).read("unsubscribe", token, now=NOW) == public_id
        with pytest.raises(TokenError):
            Tokens(["key-1"]).read("unsubscribe", token, now=NOW)

    def test_a_removed_key_no_longer_verifies(self, public_id: str) -> None:
        token = Tokens(["key-1"]).make("unsubscribe", public_id, now=NOW)
        with pytest.raises(TokenError):
            Tokens(["key-3", "key-2"]).read("unsubscribe", token, now=NOW)

    def test_no_keys_is_a_configuration_error(self) -> None:
        with pytest.raises(ConfigurationError):
            Tokens([])
        with pytest.raises(ConfigurationError):
            Tokens(["good", ""])


MALFORMED: list[object] = [
    "",
    ".",
    "..",
    "...",
    "nodots",
    "a.b",
    "a.b.c",
    "a..c",
    ".b.c",
    "x" * 100_000,
    "a." * 50_000,
    "é.ü.ñ",
    "😀😀😀",
    "abc.def.\x00",
    "abc\n.def.ghi",
    " " * 10,
    "%2e%2e",
    "../../etc/passwd",
    "abc.def.ghijklmnopqrstuvwxyz01",
    "abc.////////.ghijklmnopqrstuvwx",
    "\udcff.abc.def",
    None,
    b"abc.def.ghi",
    12345,
]


class TestMalformed:
    @pytest.mark.parametrize("token", MALFORMED, ids=lambda v: repr(v)[:30])
    @pytest.mark.parametrize("purpose", PURPOSES)
    def test_only_token_error(self, tokens: Tokens, token: object, purpose: str) -> None:
        with pytest.raises(TokenError):
            tokens.read(purpose, token, now=NOW)  # type: ignore[arg-type]

    def test_huge_timestamp_in_a_validly_signed_token(self, tokens: Tokens) -> None:
        # Signed with our key but with an absurd timestamp: refused, not a crash.
        signer = tokens._signers["confirm"]
        value = "abc." + base64_encode(b"\xff" * 8).decode()
        token = value + "." + signer.get_signature(value).decode()
        with pytest.raises(TokenError):
            tokens.read("confirm", token, now=NOW)

    def test_unicode_payload_with_a_valid_shape(self, tokens: Tokens, public_id: str) -> None:
        token = tokens.make("confirm", public_id, now=NOW)
        with pytest.raises(TokenError):
            tokens.read("confirm", "ü" + token[1:], now=NOW)


def test_signed_at_reads_the_timestamp(tokens: Tokens, public_id: str) -> None:
    token = tokens.make("confirm", public_id, now=NOW + timedelta(microseconds=700_000))
    assert signed_at(token) == NOW
    assert signed_at("no-timestamp") is None
