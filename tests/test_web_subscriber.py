"""The subscriber pages over real HTTP (uvicorn on loopback), on SQLite and PostgreSQL."""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from nurture.services import Services, build_services
from nurture.settings import Settings
from nurture.store.schema import consents, enrolments, outbox
from nurture.testing import FakeProvider
from nurture.web.app import create_app
from tests.test_subscriptions import CAMPAIGN, add_outbox, rows, snapshot, subscriber
from tests.web_server import serve_app

FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass
class Web:
    url: str
    client: httpx.Client
    services: Services
    provider: FakeProvider
    engine: Engine

    def token(self, purpose: str, public_id: str, *, days_ago: float = 0) -> str:
        when = datetime.now(UTC) - timedelta(days=days_ago)
        return self.services.tokens.make(purpose, public_id, now=when)  # type: ignore[arg-type]

    def sign_up(self, email: str = "jane@example.com", **extra: str) -> httpx.Response:
        data = {"email": email, "campaign": CAMPAIGN, "consent": "yes", "first_name": "Jane"}
        return self.client.post("/subscribe", data={**data, **extra})

    def wait_for_mail(self, count: int) -> None:
        """Waits until ``count`` emails left and were recorded (a background task sends)."""
        deadline = time.monotonic() + 10
        while len(self.provider.sent) < count or any(
            m.status != "sent" for m in rows(self.engine, outbox, outbox.c.kind == "confirmation")
        ):
            assert time.monotonic() < deadline, f"expected {count} emails"
            time.sleep(0.02)

    def confirmed(self, email: str = "jane@example.com") -> Any:
        self.sign_up(email)
        row = subscriber(self.engine, email)
        self.client.post(f"/confirm/{self.token('confirm', row.public_id)}")
        return subscriber(self.engine, email)


@contextmanager
def running(settings: Settings, engine: Engine) -> Iterator[Web]:
    """The real app (``create_app``) with real services, a FakeProvider, on loopback."""
    provider = FakeProvider()
    services = build_services(settings, provider=provider, engine=engine)
    with (
        serve_app(create_app(services)) as url,
        httpx.Client(base_url=url, follow_redirects=False, timeout=10) as client,
    ):
        yield Web(url, client, services, provider, engine)


@pytest.fixture
def web(settings: Settings, engine: Engine) -> Iterator[Web]:
    # A generous limit: these tests post often; the limit has tests of its own.
    with running(settings.model_copy(update={"subscribe_rate_limit": 1000}), engine) as web:
        yield web


def assert_page_hygiene(response: httpx.Response) -> None:
    assert "set-cookie" not in response.headers
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "Traceback" not in response.text


# Sign-up ----------------------------------------------------------------------------


def test_the_form_shows_the_exact_consent_wording_a_honeypot_and_a_time_zone_field(
    web: Web, settings: Settings
) -> None:
    page = web.client.get(f"/subscribe/{CAMPAIGN}")

    assert page.status_code == 200
    assert_page_hygiene(page)
    assert settings.consent_wording in html.unescape(page.text)
    assert 'name="website" tabindex="-1" autocomplete="off"' in page.text
    assert 'type="hidden" name="tz"' in page.text
    assert "Intl.DateTimeFormat().resolvedOptions().timeZone" in page.text
    assert f'name="campaign" value="{CAMPAIGN}"' in page.text
    assert "<link" not in page.text and "src=" not in page.text  # no external assets
    assert web.client.get("/subscribe/no-such-article").status_code == 404


def test_the_snippet_is_a_self_contained_form_posting_to_the_service(web: Web) -> None:
    snippet = web.client.get(f"/subscribe/{CAMPAIGN}/snippet")

    assert snippet.status_code == 200
    assert snippet.headers["content-type"].startswith("text/plain")
    assert 'action="https://practice.test/subscribe"' in snippet.text
    assert f'value="{CAMPAIGN}"' in snippet.text and 'name="website"' in snippet.text
    assert "<link" not in snippet.text and "src=" not in snippet.text


def test_sign_up_sends_the_confirmation_at_once(web: Web) -> None:
    answer = web.sign_up("Jane@Example.com", tz="Europe/Rome")

    assert answer.status_code == 200
    assert_page_hygiene(answer)
    assert "check your inbox" in answer.text.lower()
    assert "jane@example.com" not in answer.text.lower()
    web.wait_for_mail(1)
    address, batch = web.provider.sent[0]
    assert address == "jane@example.com" and not batch.content.marketing
    row = subscriber(web.engine)
    assert (row.status, row.timezone) == ("pending", "Europe/Rome")
    assert rows(web.engine, outbox)[0].status == "sent"
    [consent] = rows(web.engine, consents)
    assert (consent.channel, consent.ip) == ("form", "127.0.0.1")


def test_the_answer_is_identical_for_new_and_known_addresses(web: Web) -> None:
    known = web.confirmed("known@example.com")
    web.client.post(
        f"/unsubscribe/{web.token('unsubscribe', known.public_id)}", data={"confirm": "yes"}
    )
    web.sign_up("pending@example.com")

    answers = [
        web.sign_up(email)
        for email in ("new@example.com", "pending@example.com", "known@example.com")
    ]
    assert len({(a.status_code, a.text) for a in answers}) == 1

    as_json = [
        web.client.post("/subscribe", json={"email": email, "campaign": CAMPAIGN, "consent": True})
        for email in ("fresh@example.com", "known@example.com", "new@example.com")
    ]
    assert {(a.status_code, a.text) for a in as_json} == {(202, as_json[0].text)}
    assert as_json[0].json()["status"] == "ok"


def test_the_honeypot_answers_like_a_success_and_does_nothing(web: Web) -> None:
    real = web.sign_up("first@example.com")
    web.wait_for_mail(1)
    before = snapshot(web.engine)

    trapped = web.sign_up("bot@example.com", website="https://spam.example")
    trapped_json = web.client.post(
        "/subscribe",
        json={"email": "bot@example.com", "campaign": CAMPAIGN, "consent": True, "website": "x"},
    )

    assert (trapped.status_code, trapped.text) == (real.status_code, real.text)
    assert trapped_json.status_code == 202 and trapped_json.json()["status"] == "ok"
    assert snapshot(web.engine) == before
    assert subscriber(web.engine, "bot@example.com") is None


def test_invalid_sign_ups_get_a_4xx_and_never_echo_the_address(web: Web) -> None:
    page = web.sign_up("not-an-address")
    assert page.status_code == 400 and "valid email" in page.text
    assert "not-an-address" not in page.text
    no_consent = web.client.post(
        "/subscribe", data={"email": "a@example.com", "campaign": CAMPAIGN, "first_name": "Al"}
    )
    assert no_consent.status_code == 400 and 'aria-invalid="true"' in no_consent.text
    refused = web.client.post(
        "/subscribe", json={"email": "a@example.com", "campaign": CAMPAIGN, "consent": False}
    )
    assert refused.status_code == 400 and refused.json()["field"] == "consent"
    unknown = web.client.post(
        "/subscribe", json={"email": "a@example.com", "campaign": "nope", "consent": True}
    )
    assert unknown.status_code == 400 and unknown.json()["field"] == "campaign"
    assert rows(web.engine, consents) == []


def test_the_rate_limit_answers_429_with_retry_after(settings: Settings, engine: Engine) -> None:
    limited = settings.model_copy(update={"subscribe_rate_limit": 3})
    with running(limited, engine) as web:
        for n in range(3):
            assert web.sign_up(f"p{n}@example.com").status_code == 200
        page = web.sign_up("p9@example.com")
        spoofed = web.client.post(
            "/subscribe",
            json={"email": "p9@example.com", "campaign": CAMPAIGN, "consent": True},
            headers={"X-Forwarded-For": "198.51.100.99"},  # not from a trusted proxy
        )
        assert page.status_code == 429 and int(page.headers["retry-after"]) > 0
        assert "try again" in page.text
        assert spoofed.status_code == 429 and spoofed.json()["status"] == "error"
        assert subscriber(engine, "p9@example.com") is None


def test_trusted_proxies_give_each_client_its_own_limit(settings: Settings, engine: Engine) -> None:
    behind_proxy = settings.model_copy(
        update={"subscribe_rate_limit": 1, "trusted_proxies": ["127.0.0.1"]}
    )
    with running(behind_proxy, engine) as web:
        first = {"X-Forwarded-For": "203.0.113.1"}
        assert (
            web.client.post(
                "/subscribe",
                data={"email": "a@example.com", "campaign": CAMPAIGN, "consent": "yes"},
                headers=first,
            ).status_code
            == 200
        )
        again = web.client.post(
            "/subscribe",
            data={"email": "b@example.com", "campaign": CAMPAIGN, "consent": "yes"},
            headers={"X-Forwarded-For": "203.0.113.1, 127.0.0.1"},
        )
        other = web.client.post(
            "/subscribe",
            data={"email": "c@example.com", "campaign": CAMPAIGN, "consent": "yes"},
            headers={"X-Forwarded-For": "203.0.113.2"},
        )
        assert (again.status_code, other.status_code) == (429, 200)
        assert [c.ip for c in rows(engine, consents)] == ["203.0.113.1", "203.0.113.2"]


# Links from emails ------------------------------------------------------------------


def test_no_get_changes_anything(web: Web) -> None:
    pending = (web.sign_up("pending@example.com"), subscriber(web.engine, "pending@example.com"))[1]
    member = web.confirmed("member@example.com")
    add_outbox(web.engine, member.id, "02-saying-it-out-loud", "queued")
    web.wait_for_mail(2)
    before = snapshot(web.engine)

    for path in (
        f"/subscribe/{CAMPAIGN}",
        f"/subscribe/{CAMPAIGN}/snippet",
        f"/confirm/{web.token('confirm', pending.public_id)}",
        f"/confirm/{web.token('confirm', member.public_id)}",
        f"/unsubscribe/{web.token('unsubscribe', member.public_id)}",
        f"/preferences/{web.token('preferences', member.public_id)}",
        f"/confirm/{web.token('confirm', pending.public_id, days_ago=30)}",
        "/unsubscribe/forged.token.here",
        "/subscribe",
    ):
        for method in ("GET", "HEAD"):
            answer = web.client.request(method, path)
            assert answer.status_code < 500, path
    assert snapshot(web.engine) == before


def test_confirm_page_then_button(web: Web) -> None:
    web.sign_up()
    row = subscriber(web.engine)
    path = f"/confirm/{web.token('confirm', row.public_id)}"

    page = web.client.get(path)
    assert page.status_code == 200
    assert_page_hygiene(page)
    assert "Hello Jane" in page.text and 'method="post"' in page.text
    assert "jane@example.com" not in page.text
    assert subscriber(web.engine).status == "pending"

    done = web.client.post(path)
    assert done.status_code == 200 and "confirmed" in done.text
    assert subscriber(web.engine).status == "confirmed"
    [enrolment] = rows(web.engine, enrolments)
    assert (enrolment.campaign, enrolment.status, enrolment.next_step) == (CAMPAIGN, "active", 0)
    assert enrolment.next_due_at is not None
    assert web.client.post(path).status_code == 200  # a repeat is harmless
    assert len(rows(web.engine, enrolments)) == 1


@pytest.mark.parametrize("purpose", ["confirm", "unsubscribe", "preferences"])
def test_forged_expired_and_wrong_purpose_tokens_change_nothing(web: Web, purpose: str) -> None:
    member = web.confirmed()
    web.sign_up("pending@example.com")
    pending = subscriber(web.engine, "pending@example.com")
    web.wait_for_mail(2)
    add_outbox(web.engine, member.id, "02-saying-it-out-loud", "queued")
    web.wait_for_mail(2)
    public_id = pending.public_id if purpose == "confirm" else member.public_id
    good = web.token(purpose, public_id)
    wrong = web.token("confirm" if purpose != "confirm" else "unsubscribe", public_id)
    life = 8 if purpose == "confirm" else 401
    cases = {
        "forged": (good.rsplit(".", 1)[0] + ".AAAAAAAAAAAAAAAAAAAAAA", 400),
        "wrong purpose": (wrong, 400),
        "garbage": ("%3Cscript%3E", 400),
        "expired": (web.token(purpose, public_id, days_ago=life), 410),
    }
    before = snapshot(web.engine)
    for name, (token, status) in cases.items():
        for method in ("GET", "POST"):
            answer = web.client.request(method, f"/{purpose}/{token}")
            assert answer.status_code == status, (name, method)
            assert_page_hygiene(answer)
            assert "link" in answer.text.lower()
            if purpose == "confirm":
                assert 'action="/subscribe"' in answer.text and 'name="email"' in answer.text
        if purpose == "confirm" and name == "wrong purpose":
            continue  # that one is a genuine unsubscribe token
        one_click = web.client.post(
            f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click", headers=FORM_HEADERS
        )
        assert 400 <= one_click.status_code < 500
    assert snapshot(web.engine) == before


def test_the_exact_one_click_post_gmail_sends(web: Web) -> None:
    member = web.confirmed()
    queued = add_outbox(web.engine, member.id, "02-saying-it-out-loud", "queued")
    token = web.token("unsubscribe", member.public_id)
    web.client.cookies.clear()

    answer = web.client.post(
        f"/unsubscribe/{token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert answer.status_code == 200
    assert "location" not in answer.headers and "set-cookie" not in answer.headers
    assert subscriber(web.engine).status == "unsubscribed"
    assert rows(web.engine, outbox, outbox.c.id == queued)[0].status == "cancelled"
    assert rows(web.engine, consents)[-1].channel == "one_click"
    # Multipart, as RFC 8058 also allows; a repeat is answered the same.
    again = web.client.post(
        f"/unsubscribe/{token}", files={"List-Unsubscribe": (None, "One-Click")}
    )
    assert again.status_code == 200 and "set-cookie" not in again.headers


def test_unsubscribe_page_button_and_undo(web: Web) -> None:
    member = web.confirmed()
    web.wait_for_mail(1)
    token = web.token("unsubscribe", member.public_id)

    page = web.client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and 'method="post"' in page.text
    assert "/preferences/" in page.text
    assert subscriber(web.engine).status == "confirmed"

    done = web.client.post(f"/unsubscribe/{token}", data={"confirm": "yes"})
    assert done.status_code == 200 and f'action="/unsubscribe/{token}/undo"' in done.text
    assert subscriber(web.engine).status == "unsubscribed"

    undone = web.client.post(f"/unsubscribe/{token}/undo")
    assert undone.status_code == 200 and "inbox" in undone.text
    web.wait_for_mail(2)
    assert web.provider.sent[-1][1].content.marketing is False  # a confirmation, nothing else
    assert subscriber(web.engine).status == "unsubscribed"


def test_preferences_over_http(web: Web) -> None:
    member = web.confirmed()
    path = f"/preferences/{web.token('preferences', member.public_id)}"

    page = web.client.get(path)
    assert page.status_code == 200 and "Your email preferences" in page.text
    assert "What I actually do" in page.text and "jane@example.com" not in page.text

    paused = web.client.post(path, data={"action": "pause"})
    assert paused.status_code == 200 and "paused" in paused.text
    assert subscriber(web.engine).paused_until is not None
    assert web.client.post(path, data={"action": "teleport"}).status_code == 400
    assert (
        web.client.post(path, data={"action": "stop_sequence", "campaign": "x"}).status_code == 400
    )
    stopped = web.client.post(path, data={"action": "stop_all"})
    assert stopped.status_code == 200 and subscriber(web.engine).status == "unsubscribed"


# Malformed input -------------------------------------------------------------------


def _malformed() -> list[tuple[str, dict[str, Any]]]:
    big = b"email=" + b"a" * (70 * 1024)
    return [
        ("bad json", {"content": b"{not json", "headers": {"Content-Type": "application/json"}}),
        ("json array", {"content": b"[1, 2]", "headers": {"Content-Type": "application/json"}}),
        ("deep json", {"content": b"[" * 100000, "headers": {"Content-Type": "application/json"}}),
        (
            "json bad utf-8",
            {"content": b'{"email": "\xff"}', "headers": {"Content-Type": "application/json"}},
        ),
        (
            "text/plain",
            {"content": b"email=a@example.com", "headers": {"Content-Type": "text/plain"}},
        ),
        ("xml", {"content": b"<a/>", "headers": {"Content-Type": "application/xml"}}),
        ("oversized", {"content": big, "headers": FORM_HEADERS}),
        (
            "oversized chunked",
            {"content": iter([big[:40000], big[40000:]]), "headers": FORM_HEADERS},
        ),
        ("form bad utf-8", {"content": b"email=\xff\xfe&campaign=x", "headers": FORM_HEADERS}),
        ("form bad percent", {"content": b"email=%ff%fe&consent=yes", "headers": FORM_HEADERS}),
        (
            "too many fields",
            {"content": b"&".join(b"f%d=1" % i for i in range(200)), "headers": FORM_HEADERS},
        ),
        ("multipart file", {"files": {"email": ("x.txt", b"a@example.com")}}),
        (
            "multipart broken",
            {
                "content": b"--x\r\nnonsense",
                "headers": {"Content-Type": "multipart/form-data; boundary=x"},
            },
        ),
        (
            "multipart no boundary",
            {"content": b"abc", "headers": {"Content-Type": "multipart/form-data"}},
        ),
    ]


def test_malformed_input_on_every_endpoint_gets_a_4xx(web: Web) -> None:
    member = web.confirmed()
    web.wait_for_mail(1)
    unsubscribe = web.token("unsubscribe", member.public_id)
    endpoints = [
        "/subscribe",
        f"/confirm/{web.token('confirm', member.public_id)}",
        f"/unsubscribe/{unsubscribe}",
        f"/unsubscribe/{unsubscribe}/undo",
        f"/preferences/{web.token('preferences', member.public_id)}",
    ]
    before = snapshot(web.engine)
    for path in endpoints:
        for name, request in _malformed():
            answer = web.client.post(path, **request)
            assert 400 <= answer.status_code < 500, (path, name, answer.status_code)
            assert "Traceback" not in answer.text and "set-cookie" not in answer.headers
    for payload in (
        {"email": 42, "campaign": CAMPAIGN, "consent": True},
        {"email": ["a@example.com"], "campaign": CAMPAIGN, "consent": True},
        {"email": "a@example.com", "campaign": {"x": 1}, "consent": True},
        {"email": "a@example.com", "campaign": CAMPAIGN, "consent": True, "first_name": ["x"]},
        {"campaign": CAMPAIGN, "consent": True},
        {},
    ):
        answer = web.client.post(
            "/subscribe",
            content=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 400 and answer.json()["status"] == "error", payload
    assert web.client.post("/subscribe", data={}).status_code == 400
    assert (
        web.client.post(
            "/preferences/" + web.token("preferences", member.public_id), data={}
        ).status_code
        == 400
    )
    for path in (
        "/confirm/" + "x" * 5000,
        "/unsubscribe/%00%ff",
        "/preferences/ünïcode",
        "/subscribe/%2e%2e%2fetc",
    ):
        assert 400 <= web.client.get(path).status_code < 500, path
    assert snapshot(web.engine) == before


def test_the_sliding_window_forgets_old_hits() -> None:
    from nurture.web.ratelimit import SlidingWindow

    clock = [1000.0]
    window = SlidingWindow(2, 60, clock=lambda: clock[0], max_keys=2)
    assert window.hit("a") is None and window.hit("a") is None
    assert window.hit("a") == 60
    clock[0] += 30
    assert window.hit("a") == 30 and window.hit("b") is None
    clock[0] += 30.5
    assert window.hit("a") is None  # the first two have left the window
    window.hit("c")
    window.hit("d")  # past max_keys: the longest idle key ("b"... then "a") is forgotten
    assert len(window._hits) == 2
