"""Links signed ahead of time (delivery.presigning): who gets them, when they are signed
again, and when a newsletter may carry them instead of signing its own."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, select, update

from nurture.delivery import presigning
from nurture.delivery.presigning import presign_links
from nurture.mail.tokens import Tokens, signed_at
from nurture.settings import Settings
from nurture.store import link_tokens
from nurture.store.schema import subscribers
from nurture.subscriptions import gdpr
from nurture.testing import FakeClock, FakeProvider
from tests.helpers import NOW, queue_newsletter, services_for, token_of


def stored(engine: Engine) -> dict[str, tuple[str | None, str | None, datetime | None]]:
    """public_id: (link_tokens, links_key, links_signed_at) of every subscriber."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                subscribers.c.public_id,
                subscribers.c.link_tokens,
                subscribers.c.links_key,
                subscribers.c.links_signed_at,
            )
        ).all()
    return {r.public_id: (r.link_tokens, r.links_key, r.links_signed_at) for r in rows}


def change(engine: Engine, public_id: str, **values: object) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(subscribers).where(subscribers.c.public_id == public_id).values(**values)
        )


def test_confirmed_subscribers_get_links_that_read_back_as_their_own(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue_newsletter(engine, 3)
    change(engine, "pub0", status="pending")  # not confirmed: no marketing mail, no links
    tokens = Tokens.from_settings(settings)
    monkeypatch.setattr(presigning, "BATCH", 2)  # two ranges of ids: both are walked

    assert presign_links(engine, tokens, now=NOW) == 2
    assert presign_links(engine, tokens, now=NOW) == 0  # nothing due any more

    found = stored(engine)
    assert found["pub0"] == (None, None, None)
    for public_id in ("pub1", "pub2"):
        links, key, at = found[public_id]
        assert key == tokens.link_key and at == NOW and links is not None
        unsubscribe, preferences = links.split(" ")
        assert tokens.read("unsubscribe", unsubscribe, now=NOW) == public_id
        assert tokens.read("preferences", preferences, now=NOW) == public_id


def test_links_are_signed_again_halfway_through_their_use_and_for_a_new_key(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue_newsletter(engine, 2)
    tokens = Tokens.from_settings(settings)
    presign_links(engine, tokens, now=NOW)
    halfway = NOW + tokens.link_reuse / 2
    assert presign_links(engine, tokens, now=halfway - timedelta(minutes=1)) == 0
    assert presign_links(engine, tokens, now=halfway + timedelta(minutes=1)) == 2

    rotated = Tokens(["a-newer-key", *settings.secret_key_values()])
    assert rotated.link_key != tokens.link_key
    assert presign_links(engine, rotated, now=halfway) == 2
    assert {key for _, key, _ in stored(engine).values()} == {rotated.link_key}
    monkeypatch.setattr(presigning, "BATCH", 1)  # one id per transaction
    assert presign_links(engine, tokens, now=halfway, limit=1) == 1  # stops at ``limit``


def sent_links(engine: Engine, settings: Settings) -> dict[str, tuple[str, str, str]]:
    """Sends the queued newsletter at NOW: public_id: (unsubscribe token, preferences
    token, List-Unsubscribe header) of each email."""
    provider = FakeProvider()
    services = services_for(settings, engine, FakeClock(NOW), provider)
    assert services.dispatcher.dispatch().sent == 2
    by_email = {f"reader{i}@example.org": f"pub{i}" for i in range(2)}
    return {
        by_email[r.email]: (
            token_of(r.values["unsubscribe_url"]),
            token_of(r.values["preferences_url"]),
            r.headers["List-Unsubscribe"],
        )
        for b in provider.batches
        for r in b.recipients
    }


def test_a_newsletter_carries_the_links_signed_ahead_of_time(
    engine: Engine, settings: Settings
) -> None:
    queue_newsletter(engine, 2)
    presign_links(engine, Tokens.from_settings(settings), now=NOW - timedelta(days=20))
    ahead = stored(engine)

    for public_id, (unsubscribe, preferences, header) in sent_links(engine, settings).items():
        assert ahead[public_id][0] == f"{unsubscribe} {preferences}"
        assert f"/unsubscribe/{unsubscribe}>" in header
        assert f"unsubscribe+{unsubscribe}@" in header


@pytest.mark.parametrize("case", ["too old", "another key", "another person's"])
def test_links_that_no_longer_qualify_are_signed_as_the_email_is_sent(
    engine: Engine, settings: Settings, case: str
) -> None:
    queue_newsletter(engine, 2)
    tokens = Tokens.from_settings(settings)
    if case == "too old":
        presign_links(engine, tokens, now=NOW - tokens.link_reuse - timedelta(minutes=1))
    elif case == "another key":
        presign_links(engine, Tokens(["a-key-no-longer-listed"]), now=NOW)
    else:  # a row holding links made for someone else is never trusted
        presign_links(engine, tokens, now=NOW)
        change(engine, "pub0", link_tokens=stored(engine)["pub1"][0])
    ahead = stored(engine)
    fresh = {"pub0"} if case == "another person's" else {"pub0", "pub1"}

    sent = sent_links(engine, settings)
    for public_id in fresh:
        unsubscribe, preferences, _ = sent[public_id]
        assert ahead[public_id][0] != f"{unsubscribe} {preferences}"
        assert signed_at(unsubscribe) == NOW  # signed as it was sent
        assert tokens.read("unsubscribe", unsubscribe, now=NOW) == public_id
        assert tokens.read("preferences", preferences, now=NOW) == public_id


def test_what_is_shown_about_a_person_leaves_their_links_out(
    engine: Engine, settings: Settings
) -> None:
    """A subject access export may be handed on: it must not carry working links."""
    queue_newsletter(engine, 1)
    presign_links(engine, Tokens.from_settings(settings), now=NOW)
    assert stored(engine)["pub0"][0] is not None
    data = gdpr.show(engine, settings, "reader0@example.org")
    assert data is not None and data["subscriber"]["public_id"] == "pub0"
    assert not set(link_tokens.COLUMNS) & set(data["subscriber"])
