"""Per-recipient values, links and list headers (nurture.mail.recipients)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from nurture.mail.messages import Batch, Content, Sender
from nurture.mail.recipients import RecipientFactory, first_name_value, parse_unsubscribe_mailto
from nurture.mail.tokens import Tokens, new_public_id
from nurture.settings import Settings

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
ADDRESS = "jane.doe-therapyclient@gmail-example.org"


@pytest.fixture
def tokens(settings: Settings) -> Tokens:
    return Tokens.from_settings(settings)


@pytest.fixture
def factory(settings: Settings, tokens: Tokens) -> RecipientFactory:
    return RecipientFactory(settings, tokens)


def _token_of(url: str, path: str) -> str:
    match = re.fullmatch(rf"https://practice\.test/{path}/([A-Za-z0-9._-]+)", url)
    assert match, url
    return match[1]


class TestMarketing:
    def test_values_headers_and_custom_args(
        self, factory: RecipientFactory, tokens: Tokens
    ) -> None:
        pid = new_public_id()
        r = factory.marketing(
            email=ADDRESS, public_id=pid, first_name="Jane", fallback="there", outbox_id=42, now=NOW
        )
        assert r.email == ADDRESS
        assert r.outbox_id == 42
        assert r.custom_args == {"outbox_id": "42"}
        assert set(r.values) == {"first_name", "unsubscribe_url", "preferences_url"}
        assert r.values["first_name"] == "Jane"
        unsub = _token_of(r.values["unsubscribe_url"], "unsubscribe")
        prefs = _token_of(r.values["preferences_url"], "preferences")
        assert tokens.read("unsubscribe", unsub, now=NOW) == pid
        assert tokens.read("preferences", prefs, now=NOW) == pid
        assert r.headers == {
            "List-Unsubscribe": (
                f"<https://practice.test/unsubscribe/{unsub}>, "
                f"<mailto:unsubscribe+{unsub}@practice.test>"
            ),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }

    @pytest.mark.parametrize("first_name", [None, "", "   "])
    def test_fallback_for_an_empty_first_name(
        self, factory: RecipientFactory, first_name: str | None
    ) -> None:
        r = factory.marketing(
            email=ADDRESS,
            public_id=new_public_id(),
            first_name=first_name,
            fallback="friend",
            outbox_id=None,
        )
        assert r.values["first_name"] == "friend"
        assert r.custom_args == {}
        assert r.outbox_id is None

    def test_links_still_work_60_days_later(
        self, factory: RecipientFactory, tokens: Tokens
    ) -> None:
        pid = new_public_id()
        r = factory.marketing(
            email=ADDRESS, public_id=pid, first_name=None, fallback="x", outbox_id=1, now=NOW
        )
        later = NOW + timedelta(days=60)
        token = _token_of(r.values["unsubscribe_url"], "unsubscribe")
        assert tokens.read("unsubscribe", token, now=later) == pid

    def test_headers_survive_into_the_mime_message(self, factory: RecipientFactory) -> None:
        r = factory.marketing(
            email=ADDRESS, public_id=new_public_id(), first_name="Jo", fallback="x", outbox_id=7
        )
        content = Content("c", "s", "Subject", "pre", "<p>%%unsubscribe_url|html%%</p>", "x")
        msg = Batch(content, Sender("hello@practice.test", "Alex"), [r]).mime(r)
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["List-Unsubscribe"].replace("\n", "").replace("\r", "") == re.sub(
            r"\s+", " ", r.headers["List-Unsubscribe"]
        )


class TestConfirmation:
    def test_confirm_link_and_no_list_headers(
        self, factory: RecipientFactory, tokens: Tokens
    ) -> None:
        pid = new_public_id()
        r = factory.confirmation(email=ADDRESS, public_id=pid, first_name="Jane", now=NOW)
        assert r.headers == {}
        assert set(r.values) == {"first_name", "confirm_url"}
        assert r.values["first_name"] == "Jane"
        token = _token_of(r.values["confirm_url"], "confirm")
        assert tokens.read("confirm", token, now=NOW + timedelta(days=7)) == pid
        with pytest.raises(Exception, match="expired"):
            tokens.read("confirm", token, now=NOW + timedelta(days=8))

    def test_first_name_fallback(self, factory: RecipientFactory) -> None:
        r = factory.confirmation(email=ADDRESS, public_id=new_public_id(), first_name=None)
        assert r.values["first_name"] == "there"

    def test_first_name_tidied_as_in_the_preview(self, factory: RecipientFactory) -> None:
        r = factory.marketing(
            email=ADDRESS,
            public_id=new_public_id(),
            first_name=" Mary  Ann\n",
            fallback="there",
            outbox_id=None,
        )
        assert r.values["first_name"] == first_name_value(" Mary  Ann\n", "there") == "Mary Ann"


def _pieces(address: str) -> set[str]:
    """The address and every meaningful part of it."""
    local, _, domain = address.partition("@")
    parts = {address, local, domain, *re.split(r"[.\-_+@]", address)}
    return {p.lower() for p in parts if len(p) >= 3}


def test_no_url_or_header_holds_the_address(factory: RecipientFactory) -> None:
    # Fixed ids and a fixed clock make the tokens the same on every run: random ones can
    # hold a three-letter piece such as "org" by chance (a CI run failed on that once).
    marketing = factory.marketing(
        email=ADDRESS,
        public_id="Qw3rTy7uIoPaSdFgHjKlZx",
        first_name="Jane",
        fallback="x",
        outbox_id=3,
        now=NOW,
    )
    confirmation = factory.confirmation(
        email=ADDRESS, public_id="Mn8bVc2xZaSdQwErTy5uIo", first_name="J", now=NOW
    )
    exposed = [
        marketing.values["unsubscribe_url"],
        marketing.values["preferences_url"],
        confirmation.values["confirm_url"],
        *marketing.headers.values(),
        *marketing.custom_args.values(),
    ]
    for text in exposed:
        for piece in _pieces(ADDRESS):
            assert piece not in text.lower(), (piece, text)


class TestMailtoParser:
    def test_round_trip_from_the_header(self, factory: RecipientFactory, tokens: Tokens) -> None:
        pid = new_public_id()
        r = factory.marketing(
            email=ADDRESS, public_id=pid, first_name=None, fallback="x", outbox_id=1, now=NOW
        )
        mailto = re.search(r"<mailto:([^>]+)>", r.headers["List-Unsubscribe"])
        assert mailto
        token = parse_unsubscribe_mailto(mailto[1])
        assert token is not None
        assert tokens.read("unsubscribe", token, now=NOW) == pid

    @pytest.mark.parametrize(
        "address",
        [
            "unsubscribe+AbC_d-E.xYz.QQ@practice.test",
            "mailto:unsubscribe+AbC_d-E.xYz.QQ@practice.test",
            "Unsubscribe+AbC_d-E.xYz.QQ@practice.test",
            "Practice <unsubscribe+AbC_d-E.xYz.QQ@practice.test>",
            "  unsubscribe+AbC_d-E.xYz.QQ@practice.test\n",
            "mailto:unsubscribe+AbC_d-E.xYz.QQ@practice.test?subject=unsubscribe",
        ],
    )
    def test_extracts_the_token_keeping_its_case(self, address: str) -> None:
        assert parse_unsubscribe_mailto(address) == "AbC_d-E.xYz.QQ"

    @pytest.mark.parametrize(
        "address",
        [
            "",
            "unsubscribe@practice.test",
            "unsubscribe+@practice.test",
            "hello+abc@practice.test",
            "unsubscribe+abc",
            "unsubscribe+a/b@practice.test",
            "unsubscribe+abc@",
            "xunsubscribe+abc@practice.test",
            "unsubscribe+abc@practice.test@evil.test",
            "unsubscribe+ab c@practice.test",
            "x" * 5000,
        ],
    )
    def test_anything_else_is_none(self, address: str) -> None:
        assert parse_unsubscribe_mailto(address) is None
