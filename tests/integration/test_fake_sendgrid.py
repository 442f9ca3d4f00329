"""The fake SendGrid itself: what it accepts, what it refuses, how it misbehaves on cue."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest

from nurture.testing.sendgrid import SAMPLE_SIZE, FakeSendGrid, load_schema

KEY = "SG.fake-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
SHARED_SCHEMA = (
    Path(__file__).resolve().parents[3] / "shared" / "sendgrid" / "mail_send_request.schema.json"
)


@pytest.fixture
def fake() -> Iterator[FakeSendGrid]:
    with FakeSendGrid(api_key=KEY) as server:
        yield server


def body(*addresses: str, **extra: Any) -> dict[str, Any]:
    """A minimal valid request, one personalization per address."""
    data: dict[str, Any] = {
        "personalizations": [{"to": [{"email": a}]} for a in addresses or ("a@example.com",)],
        "from": {"email": "hello@practice.test", "name": "Alex Morgan"},
        "subject": "Hello",
        "content": [{"type": "text/plain", "value": "Hi"}, {"type": "text/html", "value": "<p>Hi"}],
    }
    data.update(extra)
    return data


def post(fake: FakeSendGrid, payload: Any, **options: Any) -> httpx.Response:
    content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = options.pop("headers", AUTH)
    return httpx.post(
        f"{fake.url}/v3/mail/send", content=content, headers=headers, timeout=5, **options
    )


def fields(response: httpx.Response) -> list[str | None]:
    return [e["field"] for e in response.json()["errors"]]


#: SHA-256 of shared/sendgrid/mail_send_request.schema.json when it was copied in.
SHARED_SCHEMA_SHA256 = "cf1af9fa212fe349eb38b44a32cf529dbffccddfaa727ea59bb1553dc9dbde8b"


def test_the_packaged_schema_is_the_shared_one() -> None:
    packaged = resources.files("nurture.testing.sendgrid").joinpath("mail_send_request.schema.json")
    assert hashlib.sha256(packaged.read_bytes()).hexdigest() == SHARED_SCHEMA_SHA256
    if SHARED_SCHEMA.exists():  # beside a checkout of the workspace: compare directly too
        assert load_schema() == json.loads(SHARED_SCHEMA.read_text())


def test_a_valid_request_is_accepted_and_recorded(fake: FakeSendGrid) -> None:
    response = post(fake, body("a@example.com", "b@example.com"))

    assert response.status_code == 202
    assert response.content == b""
    message_id = response.headers["X-Message-Id"]
    assert message_id and fake.accepted[0].message_id == message_id
    assert fake.recipients() == ["a@example.com", "b@example.com"]
    assert fake.requests_count == 1 and fake.recipient_count == 2


def test_sandbox_mode_answers_200_and_delivers_nothing(fake: FakeSendGrid) -> None:
    response = post(fake, body(mail_settings={"sandbox_mode": {"enable": True}}))

    assert response.status_code == 200 and response.headers["X-Message-Id"]
    assert fake.accepted[0].sandbox and fake.recipients() == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer SG.other"}, {"Authorization": f"Basic {KEY}"}],
    ids=["missing", "wrong key", "not bearer"],
)
def test_authorization_is_checked(fake: FakeSendGrid, headers: dict[str, str]) -> None:
    response = post(fake, body(), headers=headers)

    assert response.status_code == 401
    assert fake.accepted == []


def test_a_deliberately_invalid_body_is_refused_with_sendgrid_style_errors(
    fake: FakeSendGrid,
) -> None:
    invalid = body()
    del invalid["from"]
    invalid["personalizations"] = [{"subject": "no recipients"}, {"to": [{"email": "nobody"}]}]
    invalid["categories"] = ["x" * 300]

    response = post(fake, invalid)

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert all(set(e) == {"message", "field"} for e in errors)
    assert {"personalizations.0", "personalizations.1.to.0.email", "categories.0"} <= set(
        fields(response)
    )
    assert any("'from' is a required property" in e["message"] for e in errors)
    assert fake.accepted == [] and fake.statuses == [400]


def test_malformed_json_is_a_bad_request(fake: FakeSendGrid) -> None:
    assert post(fake, b"{not json").status_code == 400


def test_at_most_1000_recipients_across_personalizations(fake: FakeSendGrid) -> None:
    many = body(
        personalizations=[
            {"to": [{"email": f"to{i}@example.com"}], "cc": [{"email": f"cc{i}@example.com"}]}
            for i in range(501)
        ]
    )

    response = post(fake, many)

    assert response.status_code == 400
    assert "personalizations" in fields(response)
    assert "1002" in response.text


def test_reply_to_and_reply_to_list_are_exclusive(fake: FakeSendGrid) -> None:
    both = body(reply_to={"email": "r@practice.test"}, reply_to_list=[{"email": "s@practice.test"}])

    response = post(fake, both)

    assert response.status_code == 400 and fields(response) == ["reply_to_list"]


@pytest.mark.parametrize(
    "where",
    ["from", "reply_to", "personalization"],
)
def test_names_may_not_hold_semicolons_or_commas(fake: FakeSendGrid, where: str) -> None:
    payload = body()
    if where == "personalization":
        payload["personalizations"][0]["to"][0]["name"] = "Doe; Jane"
    else:
        payload[where] = {"email": "x@practice.test", "name": "Morgan, Alex"}

    response = post(fake, payload)

    assert response.status_code == 400
    assert any(f and f.endswith(".name") for f in fields(response))


def test_substitutions_are_limited_to_10000_bytes(fake: FakeSendGrid) -> None:
    fits = body()
    fits["personalizations"][0]["substitutions"] = {"%%a%%": "é" * 4990}  # 9,985 bytes
    too_big = body()
    too_big["personalizations"][0]["substitutions"] = {"%%a%%": "é" * 5000}  # 10,005 bytes

    assert post(fake, fits).status_code == 202
    response = post(fake, too_big)
    assert response.status_code == 400
    assert fields(response) == ["personalizations.0.substitutions"]


def test_custom_args_values_must_be_strings(fake: FakeSendGrid) -> None:
    payload = body()
    payload["personalizations"][0]["custom_args"] = {"outbox_id": 123}

    response = post(fake, payload)

    assert response.status_code == 400
    assert fields(response) == ["personalizations.0.custom_args"]


def test_reserved_headers_and_content_order(fake: FakeSendGrid) -> None:
    payload = body()
    payload["personalizations"][0]["headers"] = {"From": "x@example.com"}
    payload["content"].reverse()

    response = post(fake, payload)

    assert response.status_code == 400
    assert set(fields(response)) == {"personalizations.0.headers.From", "content"}


def test_refused_addresses_are_named_like_sendgrid_names_bad_addresses(
    fake: FakeSendGrid,
) -> None:
    fake.refuse_addresses.add("bad@example.com")

    response = post(fake, body("ok@example.com", "BAD@example.com"))

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"message": "Does not contain a valid address.", "field": "personalizations.1.to.0.email"}
    ]


def test_sample_validation_still_applies_the_rules_to_every_personalization() -> None:
    addresses = [f"r{i}@example.com" for i in range(800)]
    with FakeSendGrid(validate="sample") as fake:
        bad_rule = body(*addresses)
        bad_rule["personalizations"][700]["to"][0]["name"] = "Doe, Jane"
        bad_address = body(*addresses)
        bad_address["personalizations"][701]["to"][0]["email"] = "no-at-sign"
        missing_to = body(*addresses)
        missing_to["personalizations"][702] = {"subject": "x"}
        schema_only = body(*addresses)
        schema_only["personalizations"][703]["send_at"] = "tomorrow"  # a type the schema forbids

        assert fields(post(fake, bad_rule, headers={"Authorization": "Bearer x"})) == [
            "personalizations.700.to.0.name"
        ]
        assert fields(post(fake, bad_address, headers={"Authorization": "Bearer x"})) == [
            "personalizations.701.to.0.email"
        ]
        assert "personalizations.702.to" in fields(
            post(fake, missing_to, headers={"Authorization": "Bearer x"})
        )
        # Beyond the sample, a pure schema rule is not checked: the price of speed.
        assert post(fake, schema_only, headers={"Authorization": "Bearer x"}).status_code == 202
    assert SAMPLE_SIZE < 700
    with FakeSendGrid(validate="full") as full:
        response = post(full, schema_only, headers={"Authorization": "Bearer x"})
        assert fields(response) == ["personalizations.703.send_at"]


def test_fail_next_429_carries_the_rate_limit_reset(fake: FakeSendGrid) -> None:
    fake.fail_next(status=429, reset_in=5)

    response = post(fake, body())

    assert response.status_code == 429
    reset = int(response.headers["X-RateLimit-Reset"])
    assert time.time() + 4 <= reset <= time.time() + 6.5
    assert fake.accepted == []
    assert post(fake, body()).status_code == 202, "only the next request fails"


def test_fail_next_queues_answers_in_order(fake: FakeSendGrid) -> None:
    fake.fail_next(status=500, times=2)
    fake.fail_next(status=503)

    statuses = [post(fake, body()).status_code for _ in range(4)]

    assert statuses == [500, 500, 503, 202]
    assert fake.statuses == statuses


def test_fail_next_slow_answer_still_accepts(fake: FakeSendGrid) -> None:
    fake.fail_next(delay=0.5)

    started = time.monotonic()
    response = post(fake, body())

    assert response.status_code == 202 and time.monotonic() - started >= 0.5
    assert len(fake.accepted) == 1


def test_fail_next_drop_closes_without_answering(fake: FakeSendGrid) -> None:
    fake.fail_next(drop=True)
    fake.fail_next(drop=True, accept=True)

    with pytest.raises(httpx.RemoteProtocolError):
        post(fake, body("lost@example.com"))
    with pytest.raises(httpx.RemoteProtocolError):
        post(fake, body("taken@example.com"))

    assert fake.statuses == [None, None]
    assert fake.recipients() == ["taken@example.com"], "the answer was lost, not the mail"


def test_other_paths_are_not_found(fake: FakeSendGrid) -> None:
    response = httpx.post(f"{fake.url}/v3/marketing/send", headers=AUTH, content=b"{}")
    assert response.status_code == 404


def test_summary_recording_keeps_counts_only() -> None:
    with FakeSendGrid(record="summary") as fake:
        post(fake, body("a@example.com", "b@example.com"), headers={"Authorization": "Bearer x"})

    assert fake.recipient_count == 2
    assert fake.accepted[0].body is None and fake.recipients() == []
