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

from nurture.runtime.services import Services, build_services
from nurture.settings import Settings
from nurture.store.schema import consents, enrolments, outbox, subscribers
from nurture.testing import FakeProvider
from nurture.web.app import create_app
from tests.helpers import CAMPAIGN, add_outbox, rows, serve_app, snapshot, subscriber

FORM = "application/x-www-form-urlencoded"
FORM_HEADERS = {"Content-Type": FORM}


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
    assert 'method="post"' in page.text and "Confirm</button>" in page.text
    # Neither the address nor the name a stranger may have typed is shown.
    assert "jane@example.com" not in page.text and "Jane" not in page.text
    assert subscriber(web.engine).status == "pending"

    done = web.client.post(path)
    assert done.status_code == 200 and "confirmed" in done.text and "Jane" not in done.text
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
    # POST /unsubscribe/{token} is not here: with a valid token any POST unsubscribes
    # (test_any_post_to_a_valid_unsubscribe_link_unsubscribes).
    endpoints = [
        "/subscribe",
        f"/confirm/{web.token('confirm', member.public_id)}",
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


def test_malformed_posts_to_a_forged_unsubscribe_link_get_a_4xx(web: Web) -> None:
    member = web.confirmed()
    web.wait_for_mail(1)
    forged = web.token("unsubscribe", member.public_id).rsplit(".", 1)[0] + "." + "A" * 22
    before = snapshot(web.engine)
    for name, request in _malformed():
        answer = web.client.post(f"/unsubscribe/{forged}", **request)
        assert 400 <= answer.status_code < 500, (name, answer.status_code)
        assert "Traceback" not in answer.text and "set-cookie" not in answer.headers
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


# Review fixes ------------------------------------------------------------------------


def _json(web: Web, body: dict[str, Any], **headers: str) -> httpx.Response:
    # json.dumps escapes a lone surrogate as \\ud800, which the server's parser accepts.
    return web.client.post(
        "/subscribe",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
    )


def test_sign_up_input_that_the_database_would_refuse_is_never_a_500(web: Web) -> None:
    ok = {"campaign": CAMPAIGN, "consent": True}
    answers = [
        web.sign_up("n1@example.com", form_url="https://x/\x00y"),
        web.client.post(
            "/subscribe",
            content=b"email=n2%40example.com&campaign=" + CAMPAIGN.encode() + b"&consent=yes"
            b"&form_url=https%3A%2F%2Fx%2F%00",
            headers=FORM_HEADERS,
        ),
        _json(web, {**ok, "email": "n3@example.com", "form_url": "https://x/\x00"}),
        _json(web, {**ok, "email": "n4@example.com", "form_url": "\ud800"}),
        _json(web, {**ok, "email": "n5@example.com", "form_url": "https://x/\ud800"}),
        _json(web, {**ok, "email": "n6@example.com", "first_name": "x\ud800\x00y"}),
        _json(web, {**ok, "email": "n7@example.com", "tz": "Europe/\ud800\x00"}),
        _json(web, {**ok, "email": "n8@example.com", "consent_version": "\ud800\x00"}),
        _json(web, {**ok, "email": "n\ud800@example.com"}),
        _json(web, {**ok, "email": "n\x00@example.com"}),
        _json(web, {**ok, "email": "n9@example.com", "campaign": "\ud800"}),
        _json(web, {**ok, "email": "n10@example.com", "campaign": CAMPAIGN + "\x00"}),
        _json(web, {**ok, "email": "n11@example.com"}, **{"User-Agent": "UA\x7f\x01"}),
        _json(web, {**ok, "email": "n12@example.com"}, Referer="https://x/\x7fy"),
        web.sign_up("n13@example.com", first_name="\x00", tz="\x00"),
    ]

    statuses = [a.status_code for a in answers]
    # Accepted with the unusable part dropped, or refused for a bad address or campaign.
    assert statuses == [200, 200, 202, 202, 202, 202, 202, 202, 400, 400, 400, 400, 202, 202, 200]
    assert not any("Traceback" in a.text for a in answers)
    stored = rows(web.engine, consents)
    assert len(stored) == statuses.count(200) + statuses.count(202)
    for record in stored:
        for value in (record.form_url, record.user_agent, record.ip, record.wording_version):
            assert value is None or (
                "\x00" not in value and "\x7f" not in value and value.isprintable()
            )
    assert {r.form_url for r in stored} == {None}
    for email in ("n6@example.com", "n7@example.com", "n13@example.com"):
        row = subscriber(web.engine, email)
        assert (row.first_name, row.timezone) == (None, None)


def test_a_name_with_a_link_is_dropped_and_never_shown(web: Web) -> None:
    answer = web.sign_up("victim@example.com", first_name="Jane http://evil.example/login")

    assert answer.status_code == 200
    row = subscriber(web.engine, "victim@example.com")
    assert row.first_name is None
    page = web.client.get(f"/confirm/{web.token('confirm', row.public_id)}")
    assert "evil" not in page.text
    form = web.client.get(f"/subscribe/{CAMPAIGN}")
    assert 'name="first_name" autocomplete="given-name" maxlength="40"' in form.text


@pytest.mark.parametrize(
    ("name", "body", "content_type"),
    [
        (
            "multipart with an epilogue",
            b'--XyZ\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
            b"One-Click\r\n--XyZ--\r\nepilogue\r\n",
            "multipart/form-data; boundary=XyZ",
        ),
        ("text/plain", b"List-Unsubscribe=One-Click", "text/plain"),
        ("no content type", b"List-Unsubscribe=One-Click", None),
        ("trailing CRLF", b"List-Unsubscribe=One-Click\r\n", FORM_HEADERS["Content-Type"]),
        ("with a charset", b"List-Unsubscribe=One-Click", FORM + "; charset=utf-8"),
        ("json", b'{"List-Unsubscribe": "One-Click"}', "application/json"),
        ("oversized", b"List-Unsubscribe=One-Click&x=" + b"a" * 70_000, FORM),
        ("garbage", b"\xff\xfe\x00", "application/octet-stream"),
    ],
)
def test_any_post_to_a_valid_unsubscribe_link_unsubscribes(
    web: Web, name: str, body: bytes, content_type: str | None
) -> None:
    member = web.confirmed()
    queued = add_outbox(web.engine, member.id, "02-saying-it-out-loud", "queued")
    token = web.token("unsubscribe", member.public_id)
    headers = {"Cookie": "a=b"}
    if content_type:
        headers["Content-Type"] = content_type

    answer = web.client.post(f"/unsubscribe/{token}", content=body, headers=headers)

    assert answer.status_code == 200, name
    assert answer.headers["content-type"].startswith("text/plain")
    assert "location" not in answer.headers and "set-cookie" not in answer.headers
    assert subscriber(web.engine).status == "unsubscribed"
    assert rows(web.engine, outbox, outbox.c.id == queued)[0].status == "cancelled"


def test_a_one_click_post_records_the_one_click_channel_whatever_its_shape(web: Web) -> None:
    member = web.confirmed()
    token = web.token("unsubscribe", member.public_id)
    web.client.post(
        f"/unsubscribe/{token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "text/plain"},
    )
    assert rows(web.engine, consents)[-1].channel == "one_click"


def test_a_confirm_link_voided_by_an_unsubscribe_shows_the_invalid_link_page(web: Web) -> None:
    member = web.confirmed()
    old = web.token("confirm", member.public_id)
    web.client.post(f"/unsubscribe/{web.token('unsubscribe', member.public_id)}")

    page = web.client.get(f"/confirm/{old}")

    assert page.status_code == 400
    assert "Confirm</button>" not in page.text and "does not work" in page.text
    assert web.client.post(f"/confirm/{old}").status_code == 400
    assert subscriber(web.engine).status == "unsubscribed"


def test_resubscribe_in_the_preference_centre_says_what_happened(web: Web) -> None:
    member = web.confirmed()
    path = f"/preferences/{web.token('preferences', member.public_id)}"
    confirmations = len(rows(web.engine, outbox, outbox.c.kind == "confirmation"))

    already = web.client.post(path, data={"action": "resubscribe"})

    assert already.status_code == 200
    assert "on its way" not in already.text and "subscribed already" in already.text
    assert len(rows(web.engine, outbox, outbox.c.kind == "confirmation")) == confirmations
    web.client.post(path, data={"action": "stop_all"})
    back = web.client.post(path, data={"action": "resubscribe"})
    assert "on its way" in back.text
    assert len(rows(web.engine, outbox, outbox.c.kind == "confirmation")) == confirmations + 1


def test_the_rate_limit_counts_an_ipv6_client_by_its_64(settings: Settings, engine: Engine) -> None:
    behind_proxy = settings.model_copy(
        update={"subscribe_rate_limit": 1, "trusted_proxies": ["127.0.0.1"]}
    )
    with running(behind_proxy, engine) as web:

        def post(email: str, client: str) -> int:
            data = {"email": email, "campaign": CAMPAIGN, "consent": "yes"}
            headers = {"X-Forwarded-For": client}
            return web.client.post("/subscribe", data=data, headers=headers).status_code

        assert post("a@example.com", "2001:db8:1:2::1") == 200
        assert post("b@example.com", "2001:db8:1:2:ffff:ffff:ffff:fffe") == 429  # same /64
        assert post("c@example.com", "2001:db8:1:3::1") == 200  # the next /64
        assert post("d@example.com", "::ffff:203.0.113.9") == 200
        assert post("e@example.com", "203.0.113.9") == 429  # the same client, as IPv4
        # The consent record keeps the address itself, not the /64.
        assert rows(engine, consents)[0].ip == "2001:db8:1:2::1"


def test_confirming_records_the_ip_and_user_agent(web: Web) -> None:
    web.sign_up()
    row = subscriber(web.engine)

    web.client.post(
        f"/confirm/{web.token('confirm', row.public_id)}", headers={"User-Agent": "PhoneMail/2"}
    )

    record = rows(web.engine, consents)[-1]
    assert (record.action, record.ip, record.user_agent) == ("confirm", "127.0.0.1", "PhoneMail/2")


def test_the_consent_version_the_form_showed_is_recorded(web: Web, settings: Settings) -> None:
    form = web.client.get(f"/subscribe/{CAMPAIGN}")
    snippet = web.client.get(f"/subscribe/{CAMPAIGN}/snippet")
    field = f'type="hidden" name="consent_version" value="{settings.consent_version}"'
    assert field in form.text and field in snippet.text
    invalid = web.client.get(f"/confirm/{web.token('confirm', 'A' * 22, days_ago=30)}")
    assert field in invalid.text  # the "send a new link" form says it too

    web.sign_up("form@example.com", consent_version=settings.consent_version)
    _json(
        web,
        {
            "email": "old@example.com",
            "campaign": CAMPAIGN,
            "consent": True,
            "consent_version": "2025-01-v0",
        },
    )

    by_id = {r.id: r.email for r in rows(web.engine, subscribers)}
    records = {by_id[c.subscriber_id]: c for c in rows(web.engine, consents)}
    current, old = records["form@example.com"], records["old@example.com"]
    assert (current.wording, current.wording_version) == (
        settings.consent_wording,
        settings.consent_version,
    )
    assert (old.wording, old.wording_version) == (None, "2025-01-v0")
    assert "2025-01-v0" in old.detail
