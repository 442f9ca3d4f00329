"""SendGrid's signed Event Webhook: verification and parsing (nurture.webhooks.sendgrid)."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sendgrid.helpers.eventwebhook import EventWebhook

from nurture.exceptions import ConfigurationError, WebhookError
from nurture.settings import Settings
from nurture.testing.webhook_signing import WebhookSigner, encode_events, make_event
from nurture.webhooks import DeliveryEvent
from nurture.webhooks.sendgrid import SIGNATURE_HEADER, TIMESTAMP_HEADER, SendGridWebhook

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
STAMP = str(int(NOW.timestamp()))


@pytest.fixture(scope="module")
def signer() -> WebhookSigner:
    return WebhookSigner()


@pytest.fixture(scope="module")
def webhook(signer: WebhookSigner) -> SendGridWebhook:
    return SendGridWebhook(signer.public_key)


@pytest.fixture
def body() -> bytes:
    return encode_events([make_event("delivered", "jane@example.com", 12, at=NOW)])


def accepted(hook: SendGridWebhook, signer: WebhookSigner, body: bytes, stamp: str) -> list[Any]:
    """The events a signed request yields (verification raises when it fails)."""
    return [(e.kind, e.outbox_id) for e in hook.process(body, signer.headers(body, stamp), now=NOW)]


class TestVerify:
    def test_valid_signature_passes(
        self, webhook: SendGridWebhook, signer: WebhookSigner, body: bytes
    ) -> None:
        assert accepted(webhook, signer, body, STAMP) == [("delivered", 12)]

    def test_the_official_helper_agrees_with_our_signer(
        self, signer: WebhookSigner, body: bytes
    ) -> None:
        helper = EventWebhook(signer.public_key)
        assert helper.verify_signature(body.decode(), signer.sign(body, STAMP), STAMP)

    def test_pem_key_accepted(self, signer: WebhookSigner, body: bytes) -> None:
        hook = SendGridWebhook(signer.public_key_pem)
        assert accepted(hook, signer, body, STAMP) == [("delivered", 12)]

    def test_key_with_line_breaks_accepted(self, signer: WebhookSigner, body: bytes) -> None:
        wrapped = "\n".join(signer.public_key[i : i + 40] for i in range(0, 200, 40))
        assert accepted(SendGridWebhook(wrapped), signer, body, STAMP) == [("delivered", 12)]

    def test_raw_bytes_are_verified_not_reserialised_json(
        self, webhook: SendGridWebhook, signer: WebhookSigner
    ) -> None:
        # Odd spacing, key order and non-ASCII text: a re-serialisation would differ.
        body = '[ {"timestamp":1772355600, "email":"zoë@example.com","event":"open"} ]\n'.encode()
        assert [kind for kind, _ in accepted(webhook, signer, body, STAMP)] == ["open"]
        assert json.dumps(json.loads(body)).encode() != body

    def test_invalid_signature(self, webhook: SendGridWebhook, body: bytes) -> None:
        junk = base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode()
        for signature in [junk, base64.b64encode(b"nonsense").decode(), "AAAA", "%%%%", "é"]:
            with pytest.raises(WebhookError):
                webhook.verify(body, signature, STAMP, now=NOW)

    def test_signature_from_another_key(self, webhook: SendGridWebhook, body: bytes) -> None:
        other = WebhookSigner()
        with pytest.raises(WebhookError, match="bad signature"):
            webhook.verify(body, other.sign(body, STAMP), STAMP, now=NOW)

    def test_body_altered_by_one_byte(
        self, webhook: SendGridWebhook, signer: WebhookSigner, body: bytes
    ) -> None:
        signature = signer.sign(body, STAMP)
        for i in (0, len(body) // 2, len(body) - 1):
            altered = body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :]
            with pytest.raises(WebhookError):
                webhook.verify(altered, signature, STAMP, now=NOW)
        with pytest.raises(WebhookError):
            webhook.verify(body + b" ", signature, STAMP, now=NOW)

    def test_timestamp_is_signed(
        self, webhook: SendGridWebhook, signer: WebhookSigner, body: bytes
    ) -> None:
        signature = signer.sign(body, STAMP)
        with pytest.raises(WebhookError, match="bad signature"):
            webhook.verify(body, signature, str(int(STAMP) + 1), now=NOW)

    @pytest.mark.parametrize(
        ("signature", "timestamp"), [(None, STAMP), ("sig", None), ("", STAMP), ("sig", "")]
    )
    def test_missing_headers(
        self, webhook: SendGridWebhook, body: bytes, signature: str | None, timestamp: str | None
    ) -> None:
        with pytest.raises(WebhookError, match="missing"):
            webhook.verify(body, signature, timestamp, now=NOW)

    @pytest.mark.parametrize("timestamp", ["abc", "-5", "1.5", "１２３", "9" * 40, " 123"])
    def test_malformed_timestamp(
        self, webhook: SendGridWebhook, signer: WebhookSigner, body: bytes, timestamp: str
    ) -> None:
        with pytest.raises(WebhookError):
            webhook.verify(body, signer.sign(body, timestamp), timestamp, now=NOW)

    @pytest.mark.parametrize("offset", [-601, -3600, -86400 * 2, 601, 3600])
    def test_stale_or_future_timestamp(
        self, webhook: SendGridWebhook, signer: WebhookSigner, body: bytes, offset: int
    ) -> None:
        stamp = str(int(NOW.timestamp()) + offset)
        with pytest.raises(WebhookError, match="tolerance"):
            webhook.verify(body, signer.sign(body, stamp), stamp, now=NOW)

    @pytest.mark.parametrize("offset", [-600, -30, 0, 30, 600])
    def test_within_tolerance(
        self, webhook: SendGridWebhook, signer: WebhookSigner, body: bytes, offset: int
    ) -> None:
        stamp = str(int(NOW.timestamp()) + offset)
        assert accepted(webhook, signer, body, stamp) == [("delivered", 12)]

    def test_custom_tolerance(self, signer: WebhookSigner, body: bytes) -> None:
        stamp = str(int(NOW.timestamp()) - 3600)
        lenient = SendGridWebhook(signer.public_key, tolerance_seconds=86400)
        assert accepted(lenient, signer, body, stamp) == [("delivered", 12)]

    def test_body_that_is_not_utf8(self, webhook: SendGridWebhook, signer: WebhookSigner) -> None:
        body = b'[{"email": "\xff"}]'
        with pytest.raises(WebhookError):
            webhook.verify(body, signer.sign(body, STAMP), STAMP, now=NOW)

    def test_headers_in_any_case(
        self, webhook: SendGridWebhook, signer: WebhookSigner, body: bytes
    ) -> None:
        headers = {k.lower(): v for k, v in signer.headers(body, STAMP).items()}
        events = webhook.process(body, headers, now=NOW)
        assert [e.kind for e in events] == ["delivered"]

    def test_process_verifies_before_parsing(self, webhook: SendGridWebhook) -> None:
        with pytest.raises(WebhookError, match="missing"):
            webhook.process(b"not json", {}, now=NOW)
        headers = WebhookSigner().headers(b"[]", STAMP)
        with pytest.raises(WebhookError, match="bad signature"):
            webhook.process(b"[]", headers, now=NOW)

    def test_verification_time(
        self, webhook: SendGridWebhook, signer: WebhookSigner, body: bytes
    ) -> None:
        batch = encode_events([make_event("delivered", f"p{i}@example.com", i) for i in range(100)])
        signature = signer.sign(batch, STAMP)
        rounds = 200
        start = time.perf_counter()
        for _ in range(rounds):
            webhook.verify(batch, signature, STAMP, now=NOW)
        per_request = (time.perf_counter() - start) / rounds
        print(f"SendGrid webhook verify: {per_request * 1e6:.0f} µs per request")
        assert per_request < 0.01


class TestKeys:
    @pytest.mark.parametrize(
        "key",
        ["", "not a key", "AAAA", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"],
    )
    def test_garbage_key_is_a_configuration_error(self, key: str) -> None:
        with pytest.raises(ConfigurationError, match="SENDGRID_WEBHOOK_PUBLIC_KEY"):
            SendGridWebhook(key)

    def test_other_curves_and_algorithms_refused(self) -> None:
        keys: list[ec.EllipticCurvePublicKey | rsa.RSAPublicKey] = [
            ec.generate_private_key(ec.SECP384R1()).public_key(),
            rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(),
        ]
        for key in keys:
            der = key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            with pytest.raises(ConfigurationError):
                SendGridWebhook(base64.b64encode(der).decode())

    def test_from_settings(self, settings: Settings, signer: WebhookSigner) -> None:
        with pytest.raises(ConfigurationError):
            SendGridWebhook.from_settings(settings)
        configured = settings.model_copy(update={"sendgrid_webhook_public_key": signer.public_key})
        assert SendGridWebhook.from_settings(configured).tolerance_seconds == 600


# A batch as SendGrid sends it, with custom_args flattened into each event.
BATCH: list[tuple[dict[str, object], str, bool]] = [
    (make_event("processed", "a@example.com", 1, at=NOW), "processed", False),
    (make_event("delivered", "b@example.com", 2, at=NOW), "delivered", False),
    (make_event("deferred", "c@example.com", 3, at=NOW), "deferred", False),
    (make_event("bounce", "d@example.com", 4, at=NOW), "bounce", True),
    (make_event("soft_bounce", "e@example.com", 5, at=NOW), "soft_bounce", False),
    (make_event("dropped", "f@example.com", 6, at=NOW), "dropped", True),
    (make_event("spamreport", "g@example.com", 7, at=NOW), "spamreport", True),
    (make_event("unsubscribe", "h@example.com", 8, at=NOW), "unsubscribe", True),
    (make_event("group_unsubscribe", "i@example.com", 9, at=NOW), "group_unsubscribe", True),
    (make_event("open", "j@example.com", 10, at=NOW), "open", False),
    (make_event("click", "k@example.com", 11, at=NOW), "click", False),
    (make_event("group_resubscribe", "l@example.com", 12, at=NOW), "other", False),
    (make_event("bounce", "m@example.com", 13, at=NOW, type=None), "bounce", True),
]


class TestParse:
    def test_a_real_looking_batch(self, webhook: SendGridWebhook, signer: WebhookSigner) -> None:
        body = encode_events([event for event, _, _ in BATCH])
        events = webhook.process(body, signer.headers(body, STAMP), now=NOW)
        assert [e.kind for e in events] == [kind for _, kind, _ in BATCH]
        assert [e.suppresses for e in events] == [s for _, _, s in BATCH]
        assert [e.outbox_id for e in events] == list(range(1, len(BATCH) + 1))
        for event, (raw, _, _) in zip(events, BATCH, strict=True):
            assert event.event_id == raw["sg_event_id"]
            assert event.email == raw["email"]
            assert event.occurred_at == NOW
            assert event.occurred_at.tzinfo is UTC
            assert event.raw == raw

    def test_reasons(self, webhook: SendGridWebhook) -> None:
        events = {e.kind: e for e in webhook.parse(encode_events([event for event, _, _ in BATCH]))}
        assert events["bounce"].reason is not None and "5.1.1" in events["bounce"].reason
        assert events["dropped"].reason == "Bounced Address"
        assert events["deferred"].reason == "400 try again later"  # from "response"
        assert events["open"].reason is None

    def test_blocked_bounce_does_not_suppress(self, webhook: SendGridWebhook) -> None:
        raw = make_event("bounce", "x@example.com", 1, at=NOW, type="blocked")
        (event,) = webhook.parse(encode_events([raw]))
        assert (event.kind, event.suppresses) == ("soft_bounce", False)

    def test_literal_sendgrid_json(self, webhook: SendGridWebhook) -> None:
        body = b"""[
          {"email":"example@test.com","timestamp":1513299569,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>",
           "event":"bounce","category":"cat facts","sg_event_id":"6g4ZI7SA-xmRDv57GoPIPw==",
           "sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
           "reason":"500 unknown recipient","status":"5.0.0","type":"bounce","outbox_id":"77"},
          {"email":"example@test.com","timestamp":1513299569,"event":"bounce","type":"blocked",
           "sg_event_id":"Bk2nWvUzS4i3xvxKaSMpdA==","reason":"blocked","status":"4.0.0"}
        ]"""
        bounce, blocked = webhook.parse(body)
        assert (bounce.kind, bounce.outbox_id, bounce.suppresses) == ("bounce", 77, True)
        assert bounce.event_id == "6g4ZI7SA-xmRDv57GoPIPw=="
        assert bounce.occurred_at == datetime(2017, 12, 15, 0, 59, 29, tzinfo=UTC)
        assert (blocked.kind, blocked.outbox_id, blocked.suppresses) == ("soft_bounce", None, False)

    @pytest.mark.parametrize(
        ("value", "expected"),
        [("123", 123), (123, 123), ("abc", None), ("", None), (None, None), ("-4", None),
         (True, None), ("0", None), ("1" * 30, None), (1.5, None)],
    )  # fmt: skip
    def test_outbox_id_values(
        self, webhook: SendGridWebhook, value: object, expected: int | None
    ) -> None:
        raw = make_event("delivered", "x@example.com", at=NOW)
        raw["outbox_id"] = value
        (event,) = webhook.parse(encode_events([raw]))
        assert event.outbox_id == expected

    def test_missing_outbox_id(self, webhook: SendGridWebhook) -> None:
        (event,) = webhook.parse(encode_events([make_event("delivered", "x@example.com")]))
        assert event.outbox_id is None

    @pytest.mark.parametrize("key", ["custom_args", "unique_args"])
    def test_nested_custom_args(self, webhook: SendGridWebhook, key: str) -> None:
        raw = make_event("delivered", "x@example.com", at=NOW)
        raw[key] = {"outbox_id": "31"}
        assert webhook.parse(encode_events([raw]))[0].outbox_id == 31

    def test_event_without_sg_event_id_gets_a_stable_id(self, webhook: SendGridWebhook) -> None:
        raw = make_event("delivered", "x@example.com", 1, at=NOW)
        del raw["sg_event_id"]
        first = webhook.parse(encode_events([raw]))[0].event_id
        again = webhook.parse(json.dumps([dict(reversed(list(raw.items())))]).encode())
        assert first == again[0].event_id
        assert first.startswith("sha256:")

    def test_string_timestamp(self, webhook: SendGridWebhook) -> None:
        raw = make_event("open", "x@example.com", at=NOW, timestamp=str(int(NOW.timestamp())))
        assert webhook.parse(encode_events([raw]))[0].occurred_at == NOW

    def test_empty_batch(self, webhook: SendGridWebhook) -> None:
        assert webhook.parse(b"[]") == []

    @pytest.mark.parametrize(
        "body",
        [
            b"",
            b"not json",
            b"{",
            b'{"event": "delivered"}',
            b'"string"',
            b"null",
            b"[1, 2]",
            b"[[]]",
            b"[NaN]",
            b'[{"email": "x@example.com", "timestamp": NaN, "event": "open"}]',
            b'[{"timestamp": 1, "event": "open"}]',
            b'[{"email": "", "timestamp": 1, "event": "open"}]',
            b'[{"email": 5, "timestamp": 1, "event": "open"}]',
            b'[{"email": "x@example.com", "event": "open"}]',
            b'[{"email": "x@example.com", "timestamp": "yesterday", "event": "open"}]',
            b'[{"email": "x@example.com", "timestamp": true, "event": "open"}]',
            b'[{"email": "x@example.com", "timestamp": 1e300, "event": "open"}]',
            b"\xff\xfe\x00",
            b"[" * 100_000 + b"]" * 100_000,
        ],
        ids=lambda b: repr(b)[:40],
    )
    def test_malformed_bodies(self, webhook: SendGridWebhook, body: bytes) -> None:
        with pytest.raises(WebhookError):
            webhook.parse(body)

    def test_unknown_or_missing_event_name_is_other(self, webhook: SendGridWebhook) -> None:
        body = b'[{"email": "x@example.com", "timestamp": 1, "event": "brand_new"},' + (
            b' {"email": "x@example.com", "timestamp": 1}]'
        )
        assert [e.kind for e in webhook.parse(body)] == ["other", "other"]

    def test_errors_never_name_the_address(self, webhook: SendGridWebhook) -> None:
        body = b'[{"email": "secret.person@example.com", "event": "open"}]'
        with pytest.raises(WebhookError) as info:
            webhook.parse(body)
        assert "secret" not in str(info.value) + repr(info.value.context)


def test_delivery_event_is_hashable_and_compares_without_raw() -> None:
    a = DeliveryEvent("id", "delivered", "x@example.com", 1, NOW, None, {"a": 1})
    b = DeliveryEvent("id", "delivered", "x@example.com", 1, NOW, None, {"b": 2})
    assert a == b
    assert len({a, b}) == 1
    assert "x@example.com" in a.email and "raw" not in repr(a)


def test_signer_headers_and_public_key_format(signer: WebhookSigner) -> None:
    headers = signer.headers(b"[]")
    assert set(headers) == {"Content-Type", SIGNATURE_HEADER, TIMESTAMP_HEADER}
    assert abs(int(headers[TIMESTAMP_HEADER]) - time.time()) < 5
    der = base64.b64decode(signer.public_key, validate=True)
    key = serialization.load_der_public_key(der)
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
