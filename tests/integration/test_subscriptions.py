"""The subscriber's path in the core: every state change, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from nurture.exceptions import SubscriptionError, TokenError, TokenExpired
from nurture.mail.tokens import Tokens
from nurture.settings import Settings
from nurture.store import consents as consent_ops
from nurture.store import subscribers as subscriber_ops
from nurture.store import suppressions as suppression_ops
from nurture.store.schema import consents, enrolments, outbox, subscribers, suppressions
from nurture.subscriptions import Subscriptions
from nurture.subscriptions.validation import clean_first_name
from tests.helpers import (
    CAMPAIGN,
    OTHER,
    T0,
    add_outbox,
    confirmed,
    make_service,
    request,
    rows,
    snapshot,
    subscriber,
)


@pytest.fixture
def service(settings: Settings, engine: Engine) -> Subscriptions:
    return make_service(settings, engine)


# Sign-up ------------------------------------------------------------------------------


def test_new_sign_up_is_pending_with_consent_record_and_queued_confirmation(
    service: Subscriptions, engine: Engine, settings: Settings
) -> None:
    outbox_id = service.sign_up(request("  Jane@EXAMPLE.com "), now=T0)

    row = subscriber(engine)
    assert row.status == "pending"
    assert (row.first_name, row.timezone, row.source_campaign) == (
        "Jane",
        "Europe/Berlin",
        CAMPAIGN,
    )
    assert row.confirmation_sent_at == T0 and row.confirmed_at is None
    [consent] = rows(engine, consents)
    assert consent.subscriber_id == row.id
    assert (consent.action, consent.channel, consent.campaign) == ("opt_in", "form", CAMPAIGN)
    assert consent.wording == settings.consent_wording
    assert consent.wording_version == settings.consent_version
    assert (consent.ip, consent.user_agent) == ("203.0.113.7", "Mozilla/5.0 (test)")
    assert consent.form_url.endswith("/articles/what-i-actually-do")
    [mail] = rows(engine, outbox)
    assert mail.id == outbox_id
    assert (mail.kind, mail.campaign, mail.status) == ("confirmation", CAMPAIGN, "queued")
    assert mail.step == f"confirm-{int(T0.timestamp()) // 600}" and mail.due_at == T0
    assert rows(engine, enrolments) == []


@pytest.mark.parametrize("state", ["new", "pending", "confirmed", "unsubscribed", "erased"])
def test_sign_up_answers_the_same_whatever_the_state(
    state: str, service: Subscriptions, engine: Engine, settings: Settings
) -> None:
    from nurture.subscriptions import gdpr

    earlier = T0 - timedelta(days=2)
    if state != "new":
        row = confirmed(service, now=earlier) if state != "pending" else None
        if state == "pending":
            service.sign_up(request(), now=earlier)
        if state == "unsubscribed":
            service.unsubscribe(
                service.tokens.make("unsubscribe", row.public_id, now=earlier),
                channel="link",
                now=earlier,
            )
        if state == "erased":
            gdpr.erase(engine, settings, "jane@example.com", earlier)
    before = subscriber(engine)
    consents_before = len(rows(engine, consents))

    result = service.sign_up(request(first_name="Someone Else"), now=T0)

    assert isinstance(result, int)  # a fresh confirmation, whatever the state
    after = subscriber(engine)
    [latest] = rows(engine, outbox, outbox.c.id == result)
    assert (latest.kind, latest.subscriber_id, latest.status) == (
        "confirmation",
        after.id,
        "queued",
    )
    assert len(rows(engine, consents)) == consents_before + 1
    assert rows(engine, consents)[-1].action == "opt_in"
    expected_status = {"new": "pending", "pending": "pending", "erased": "pending"}
    assert after.status == expected_status.get(state, state)
    if state in ("confirmed", "unsubscribed"):
        # A confirmed person's details are never changed by an anonymous form.
        assert after.first_name == before.first_name == "Jane"
    with engine.connect() as conn:
        suppressed = suppression_ops.is_suppressed(conn, settings, "jane@example.com")
    assert suppressed == (state in ("unsubscribed", "erased"))


def test_at_most_one_confirmation_per_ten_minutes(service: Subscriptions, engine: Engine) -> None:
    first = service.sign_up(request(), now=T0)
    assert first is not None
    assert service.sign_up(request(), now=T0 + timedelta(minutes=5)) is None
    assert service.sign_up(request(campaign=OTHER), now=T0 + timedelta(minutes=9)) is None
    third = service.sign_up(request(), now=T0 + timedelta(minutes=10, seconds=1))
    assert third is not None and third != first

    assert len(rows(engine, outbox)) == 2
    assert [c.action for c in rows(engine, consents)] == ["opt_in"] * 4
    assert subscriber(engine).source_campaign == CAMPAIGN  # the latest form wins


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"email": "not-an-address"}, "email"),
        ({"email": "a" * 400 + "@example.com"}, "email"),
        ({"email": ""}, "email"),
        ({"campaign": "no-such-campaign"}, "campaign"),
        ({"consent": False}, "consent"),
        ({"first_name": 42}, "first_name"),
    ],
)
def test_invalid_sign_up_is_refused_and_changes_nothing(
    changes: dict[str, Any], field: str, service: Subscriptions, engine: Engine
) -> None:
    before = snapshot(engine)
    values = {"email": "jane@example.com", **changes}
    with pytest.raises(SubscriptionError) as caught:
        service.sign_up(request(**values), now=T0)
    assert caught.value.context["field"] == field
    assert snapshot(engine) == before


def test_details_are_cleaned(service: Subscriptions, engine: Engine) -> None:
    service.sign_up(
        request(first_name="  Anne-Marie \t\n O\u2019Neill ", timezone="Mars/Olympus"),
        now=T0,
    )
    row = subscriber(engine)
    assert row.first_name == "Anne-Marie O\u2019Neill"
    assert row.timezone is None
    service.sign_up(request("JANE@example.COM"), now=T0 + timedelta(hours=1))
    assert len(rows(engine, subscribers)) == 1  # one person, however it is spelt


@pytest.mark.parametrize(
    "name",
    [
        "Jane, log in at http://evil.example/login",
        "http://evil.example/login",
        "www.evil.example",
        "Jane evil.example",
        "jane@evil.example",
        "12345",
        "Ja\x00ne",
        "x\ud800y",
        "<b>Jane</b>",
        "=HYPERLINK(1)",
        "Jane\u202e",
        "J" * 41,
        "...",
    ],
)
def test_a_first_name_that_is_not_a_name_is_dropped(
    name: str, service: Subscriptions, engine: Engine
) -> None:
    assert service.sign_up(request(first_name=name), now=T0) is not None  # not an error
    assert subscriber(engine).first_name is None


@pytest.mark.parametrize(
    "name", ["Jane", "Anne-Marie", "O'Neill", "J. R.", "Zo\u00eb", "\u5c71\u7530", "Jos\u00e9 Luis"]
)
def test_real_first_names_are_kept(name: str) -> None:
    assert clean_first_name(name) == name


@pytest.mark.parametrize(
    ("field", "value", "stored"),
    [
        ("form_url", "https://x/\x00y", None),
        ("form_url", "https://x/\ud800", None),
        ("form_url", "javascript:alert(1)", None),
        ("form_url", "https://" + "a" * 1990, None),
        (
            "form_url",
            "https://user:pw@Site.example/a?email=jane@example.com#f",
            "https://site.example/a",
        ),
        ("user_agent", "Mozilla\x00/5.0 \ud800", "Mozilla /5.0"),
        ("ip", "203.0.113.7\x00", None),
    ],
)
def test_consent_evidence_is_stored_clean(
    field: str, value: str, stored: str | None, service: Subscriptions, engine: Engine
) -> None:
    service.sign_up(request(**{field: value}), now=T0)
    [consent] = rows(engine, consents)
    assert getattr(consent, field) == stored


@pytest.mark.parametrize(
    "zone", ["Europe/Ber\x00lin", "Europe/\ud800", "../../../../etc/passwd", "/etc/localtime"]
)
def test_an_unusable_time_zone_is_dropped_not_stored(
    zone: str, service: Subscriptions, engine: Engine
) -> None:
    assert service.sign_up(request(timezone=zone), now=T0) is not None
    assert subscriber(engine).timezone is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"email": "ja\x00ne@example.com"}, "email"),
        ({"email": "ja\ud800ne@example.com"}, "email"),
        ({"campaign": "\ud800"}, "campaign"),
        ({"campaign": CAMPAIGN + "\x00"}, "campaign"),
    ],
)
def test_unclean_address_or_campaign_is_refused(
    changes: dict[str, Any], field: str, service: Subscriptions, engine: Engine
) -> None:
    before = snapshot(engine)
    with pytest.raises(SubscriptionError) as caught:
        service.sign_up(request(**changes), now=T0)
    assert caught.value.context["field"] == field
    assert snapshot(engine) == before


def test_the_consent_wording_recorded_is_the_one_the_form_showed(
    service: Subscriptions, engine: Engine, settings: Settings
) -> None:
    service.sign_up(request("now@example.com"), now=T0)
    service.sign_up(request("old@example.com", consent_version="2025-01-v0"), now=T0)
    service.sign_up(request("unsaid@example.com", consent_version=None), now=T0)
    service.sign_up(request("junk@example.com", consent_version="v1\x00<b>"), now=T0)

    by_email = {
        subscriber(engine, e).id: e
        for e in ("now@example.com", "old@example.com", "unsaid@example.com", "junk@example.com")
    }
    records = {by_email[c.subscriber_id]: c for c in rows(engine, consents)}
    current = records["now@example.com"]
    assert (current.wording, current.wording_version, current.detail) == (
        settings.consent_wording,
        settings.consent_version,
        None,
    )
    old = records["old@example.com"]
    assert (old.wording, old.wording_version) == (None, "2025-01-v0")
    assert "2025-01-v0" in old.detail
    for email in ("unsaid@example.com", "junk@example.com"):
        record = records[email]
        assert (record.wording, record.wording_version) == (None, None)
        assert "unknown" in record.detail


# Confirmation ---------------------------------------------------------------------


def test_confirm_enrols_with_first_step_due_now_and_a_repeat_is_harmless(
    service: Subscriptions, engine: Engine, settings: Settings
) -> None:
    service.sign_up(request(), now=T0)
    row = subscriber(engine)
    token = service.tokens.make("confirm", row.public_id, now=T0)
    later = T0 + timedelta(hours=3)

    result = service.confirm(token, now=later)

    assert result.newly and result.campaign == CAMPAIGN and result.first_name == "Jane"
    row = subscriber(engine)
    assert (row.status, row.confirmed_at) == ("confirmed", later)
    [enrolment] = rows(engine, enrolments)
    assert (enrolment.campaign, enrolment.status, enrolment.next_step) == (CAMPAIGN, "active", 0)
    assert enrolment.next_due_at == later and enrolment.enrolled_at == later
    assert [c.action for c in rows(engine, consents)] == ["opt_in", "confirm"]

    before = snapshot(engine)
    again = service.confirm(token, now=later + timedelta(minutes=1))
    assert not again.newly
    assert snapshot(engine) == before


def test_confirming_a_second_article_enrols_in_it_too(
    service: Subscriptions, engine: Engine
) -> None:
    row = confirmed(service)
    later = T0 + timedelta(days=1)
    service.sign_up(request(campaign=OTHER), now=later)
    service.confirm(service.tokens.make("confirm", row.public_id, now=later), now=later)
    assert {e.campaign for e in rows(engine, enrolments)} == {CAMPAIGN, OTHER}


def test_confirm_records_who_pressed_the_button(
    service: Subscriptions, engine: Engine, settings: Settings
) -> None:
    service.sign_up(request(), now=T0)
    token = service.tokens.make("confirm", subscriber(engine).public_id, now=T0)

    service.confirm(token, now=T0, ip="198.51.100.4", user_agent="Phone\x00Mail/1.0")

    record = rows(engine, consents)[-1]
    assert (record.action, record.ip, record.user_agent) == (
        "confirm",
        "198.51.100.4",
        "Phone Mail/1.0",
    )
    assert (record.wording_version, record.campaign) == (settings.consent_version, CAMPAIGN)
    # The existing call sites (no evidence to give) keep working.
    service.sign_up(request("other@example.com"), now=T0)
    other = subscriber(engine, "other@example.com")
    service.confirm(service.tokens.make("confirm", other.public_id, now=T0), now=T0)
    assert (rows(engine, consents)[-1].ip, rows(engine, consents)[-1].user_agent) == (None, None)


def test_a_stranger_signing_up_a_confirmed_person_changes_nothing_they_agreed_to(
    service: Subscriptions, engine: Engine
) -> None:
    service.sign_up(request(timezone=None), now=T0)
    row = subscriber(engine)
    link_a = service.tokens.make("confirm", row.public_id, now=T0)
    service.confirm(link_a, now=T0)
    before = subscriber(engine)
    later = T0 + timedelta(days=1)

    queued = service.sign_up(
        request(campaign=OTHER, first_name="Mallory", timezone="Pacific/Kiritimati"), now=later
    )

    after = subscriber(engine)
    assert (after.first_name, after.timezone, after.source_campaign, after.status) == (
        before.first_name,
        None,
        CAMPAIGN,
        "confirmed",
    )
    [mail] = rows(engine, outbox, outbox.c.id == queued)
    assert (mail.kind, mail.campaign) == ("confirmation", OTHER)  # the request travels here
    # The old link of A's email is a harmless repeat: it does not enrol in B.
    repeat = service.confirm(link_a, now=later + timedelta(minutes=1))
    assert (repeat.newly, repeat.campaign) == (False, CAMPAIGN)
    assert {e.campaign for e in rows(engine, enrolments)} == {CAMPAIGN}
    # Pressing the link of B's confirmation enrols in B, and still changes no detail.
    link_b = service.tokens.make("confirm", row.public_id, now=later + timedelta(minutes=2))
    result = service.confirm(link_b, now=later + timedelta(minutes=3))
    assert result.campaign == OTHER
    assert {e.campaign for e in rows(engine, enrolments)} == {CAMPAIGN, OTHER}
    final = subscriber(engine)
    assert (final.first_name, final.timezone, final.source_campaign) == (
        before.first_name,
        None,
        CAMPAIGN,
    )


def test_a_stranger_cannot_change_an_unsubscribed_persons_details(
    service: Subscriptions, engine: Engine
) -> None:
    row = confirmed(service)
    service.unsubscribe(
        service.tokens.make("unsubscribe", row.public_id, now=T0), channel="link", now=T0
    )
    before = subscriber(engine)

    service.sign_up(request(campaign=OTHER, first_name="Mallory", timezone="Asia/Tokyo"), now=T0)

    after = subscriber(engine)
    assert (after.first_name, after.timezone, after.source_campaign) == (
        before.first_name,
        before.timezone,
        before.source_campaign,
    )


def test_confirming_enrols_in_the_campaign_of_the_email_the_link_came_from(
    service: Subscriptions, engine: Engine
) -> None:
    service.sign_up(request(), now=T0)
    public_id = subscriber(engine).public_id
    link_a = service.tokens.make("confirm", public_id, now=T0)
    # A second form within 10 minutes: no second email, so the only link names A.
    assert service.sign_up(request(campaign=OTHER), now=T0 + timedelta(minutes=2)) is None

    result = service.confirm(link_a, now=T0 + timedelta(minutes=3))

    assert result.campaign == CAMPAIGN
    assert [e.campaign for e in rows(engine, enrolments)] == [CAMPAIGN]
    assert subscriber(engine).source_campaign == CAMPAIGN


def test_a_confirm_link_voided_by_an_unsubscribe_shows_no_button(
    service: Subscriptions, engine: Engine
) -> None:
    row = confirmed(service)
    old = service.tokens.make("confirm", row.public_id, now=T0)
    assert service.person("confirm", old, now=T0) is not None
    later = T0 + timedelta(minutes=5)
    service.unsubscribe(
        service.tokens.make("unsubscribe", row.public_id, now=later), channel="link", now=later
    )
    with pytest.raises(TokenError):
        service.person("confirm", old, now=later)
    # Other purposes still name the person (the preferences page works after unsubscribing).
    assert service.person("preferences", _prefs(service, row), now=later) is not None


def test_bad_confirm_tokens_change_nothing(service: Subscriptions, engine: Engine) -> None:
    service.sign_up(request(), now=T0)
    public_id = subscriber(engine).public_id
    before = snapshot(engine)
    good = service.tokens.make("confirm", public_id, now=T0)
    for token in (
        good[:-2] + ("AA" if not good.endswith("AA") else "BB"),  # forged signature
        service.tokens.make("unsubscribe", public_id, now=T0),  # wrong purpose
        Tokens(["another-key"]).make("confirm", public_id, now=T0),  # unknown key
        "junk",
        "",
    ):
        with pytest.raises(TokenError):
            service.confirm(token, now=T0)
    with pytest.raises(TokenExpired):
        service.confirm(good, now=T0 + timedelta(days=8))
    assert snapshot(engine) == before


# Unsubscribe ---------------------------------------------------------------------


def test_unsubscribe_cancels_waiting_mail_suppresses_and_records_at_once(
    service: Subscriptions, engine: Engine, settings: Settings
) -> None:
    row = confirmed(service)
    queued = add_outbox(engine, row.id, "02-saying-it-out-loud", "queued")
    later = add_outbox(engine, row.id, "03-how-wanting-works", "queued")
    sent = add_outbox(engine, row.id, "01-welcome", "sent")
    sending = add_outbox(engine, row.id, "04-the-stories-we-carry", "sending")
    bystander = confirmed(service, "other@example.com")
    theirs = add_outbox(engine, bystander.id, "02-saying-it-out-loud", "queued")
    token = service.tokens.make("unsubscribe", row.public_id, now=T0)
    when = T0 + timedelta(days=1)

    assert service.unsubscribe(token, channel="one_click", now=when) is True

    status = {m.id: m.status for m in rows(engine, outbox)}
    assert status[queued] == status[later] == "cancelled"
    assert (status[sent], status[sending], status[theirs]) == ("sent", "sending", "queued")
    row = subscriber(engine)
    assert (row.status, row.unsubscribed_at) == ("unsubscribed", when)
    assert {e.status for e in rows(engine, enrolments, enrolments.c.subscriber_id == row.id)} == {
        "stopped"
    }
    with engine.connect() as conn:
        assert suppression_ops.lookup(conn, settings, "jane@example.com").reason == "unsubscribe"
        assert not suppression_ops.is_suppressed(conn, settings, "other@example.com")
    withdraw = rows(engine, consents, consents.c.action == "withdraw")
    assert [(c.subscriber_id, c.channel, c.created_at) for c in withdraw] == [
        (row.id, "one_click", when)
    ]

    before = snapshot(engine)
    assert service.unsubscribe(token, channel="link", now=when + timedelta(hours=1)) is False
    assert snapshot(engine) == before


def test_unsubscribe_is_one_transaction(
    service: Subscriptions, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = confirmed(service)
    add_outbox(engine, row.id, "02-saying-it-out-loud", "queued")
    before = snapshot(engine)

    def broken(*args: object, **kwargs: object) -> bool:
        raise RuntimeError("the suppression insert failed")

    # Fault injection: the last write fails, so every earlier write must roll back.
    monkeypatch.setattr(suppression_ops, "add", broken)
    with pytest.raises(RuntimeError):
        service.unsubscribe(
            service.tokens.make("unsubscribe", row.public_id, now=T0), channel="link", now=T0
        )
    assert snapshot(engine) == before


def test_an_old_confirm_link_cannot_undo_an_unsubscribe(
    service: Subscriptions, engine: Engine
) -> None:
    row = confirmed(service)
    old_link = service.tokens.make("confirm", row.public_id, now=T0)
    later = T0 + timedelta(days=1)
    service.unsubscribe(
        service.tokens.make("unsubscribe", row.public_id, now=later), channel="link", now=later
    )
    before = snapshot(engine)
    with pytest.raises(TokenError):
        service.confirm(old_link, now=later + timedelta(hours=1))
    assert snapshot(engine) == before


def test_undo_only_sends_a_fresh_confirmation_and_confirming_resumes(
    service: Subscriptions, engine: Engine, settings: Settings
) -> None:
    row = confirmed(service)
    step2 = add_outbox(engine, row.id, "01-welcome", "queued")
    unsubscribe = service.tokens.make("unsubscribe", row.public_id, now=T0)
    t1 = T0 + timedelta(minutes=2)
    service.unsubscribe(unsubscribe, channel="link", now=t1)
    before = snapshot(engine)

    # Within 10 minutes of the sign-up's confirmation, yet it was voided by the unsubscribe.
    outbox_id = service.undo(unsubscribe, now=t1 + timedelta(minutes=1))

    assert outbox_id is not None
    [fresh] = rows(engine, outbox, outbox.c.id == outbox_id)
    assert (fresh.kind, fresh.status) == ("confirmation", "queued")
    row = subscriber(engine)
    assert row.status == "unsubscribed"
    with engine.connect() as conn:
        assert suppression_ops.is_suppressed(conn, settings, row.email)
    changed = ("outbox", "outbox_steps", "subscribers", "consents")  # the new confirmation's
    assert {k: v for k, v in snapshot(engine).items() if k not in changed} == {
        k: v for k, v in before.items() if k not in changed
    }
    assert service.undo(unsubscribe, now=t1 + timedelta(minutes=2)) is None  # rate-limited

    t2 = t1 + timedelta(hours=1)
    service.confirm(service.tokens.make("confirm", row.public_id, now=t2), now=t2)
    row = subscriber(engine)
    assert row.status == "confirmed" and row.unsubscribed_at is None
    with engine.connect() as conn:
        assert not suppression_ops.is_suppressed(conn, settings, row.email)
    [enrolment] = rows(engine, enrolments)
    assert enrolment.status == "active"
    # The step the unsubscribe cancelled is back in the queue; the planner need not re-plan.
    [revived] = rows(engine, outbox, outbox.c.id == step2)
    assert (revived.status, revived.due_at) == ("queued", t2)
    assert enrolment.next_due_at is None


# Preferences -----------------------------------------------------------------------


def _prefs(service: Subscriptions, row: Any) -> str:
    return service.tokens.make("preferences", row.public_id, now=T0)


def test_stop_one_sequence(service: Subscriptions, engine: Engine) -> None:
    row = confirmed(service)
    later = T0 + timedelta(days=1)
    service.sign_up(request(campaign=OTHER), now=later)
    service.confirm(service.tokens.make("confirm", row.public_id, now=later), now=later)
    mine = add_outbox(engine, row.id, "01-welcome", "queued")
    other = add_outbox(engine, row.id, "01-the-first-step", "queued", campaign=OTHER)
    view = service.preferences(_prefs(service, row), now=later)
    assert view is not None and {s.slug for s in view.sequences} == {CAMPAIGN, OTHER}

    change = service.change_preferences(
        _prefs(service, row), "stop_sequence", campaign=CAMPAIGN, now=later
    )

    assert change is not None and change.changed
    assert [s.slug for s in change.preferences.sequences] == [OTHER]
    status = {e.campaign: e.status for e in rows(engine, enrolments)}
    assert status == {CAMPAIGN: "stopped", OTHER: "active"}
    assert {m.id: m.status for m in rows(engine, outbox, outbox.c.kind == "sequence")} == {
        mine: "cancelled",
        other: "queued",
    }
    record = rows(engine, consents)[-1]
    assert (record.action, record.channel, record.detail, record.campaign) == (
        "preferences",
        "preferences",
        "stop_sequence",
        CAMPAIGN,
    )
    assert subscriber(engine).status == "confirmed"
    with pytest.raises(SubscriptionError):
        service.change_preferences(
            _prefs(service, row), "stop_sequence", campaign=CAMPAIGN, now=later
        )


def test_stop_newsletters_and_everything(
    service: Subscriptions, engine: Engine, settings: Settings
) -> None:
    row = confirmed(service)
    letter = add_outbox(
        engine,
        row.id,
        "2026-12-08-winter-note",
        "queued",
        kind="newsletter",
        campaign="newsletters",
    )
    step = add_outbox(engine, row.id, "01-welcome", "queued")

    service.change_preferences(_prefs(service, row), "stop_newsletters", now=T0)
    assert subscriber(engine).newsletters is False
    assert {m.id: m.status for m in rows(engine, outbox, outbox.c.kind != "confirmation")} == {
        letter: "cancelled",
        step: "queued",
    }

    change = service.change_preferences(_prefs(service, row), "stop_all", now=T0)
    assert change is not None and change.preferences.status == "unsubscribed"
    assert rows(engine, outbox, outbox.c.id == step)[0].status == "cancelled"
    assert rows(engine, consents)[-1].action == "withdraw"
    assert rows(engine, consents)[-1].channel == "preferences"
    with engine.connect() as conn:
        assert suppression_ops.is_suppressed(conn, settings, row.email)
    with pytest.raises(SubscriptionError):
        service.change_preferences(_prefs(service, row), "pause", now=T0)


def test_pause_moves_due_times_and_resume_brings_them_back(
    service: Subscriptions, engine: Engine
) -> None:
    row = confirmed(service)  # Europe/Berlin, window 08:00-20:00
    queued = add_outbox(engine, row.id, "01-welcome", "queued")
    now = T0 + timedelta(hours=1)

    change = service.change_preferences(_prefs(service, row), "pause", now=now)

    until = now + timedelta(days=30)
    assert change is not None and change.preferences.paused(now)
    assert subscriber(engine).paused_until == until
    [mail] = rows(engine, outbox, outbox.c.id == queued)
    assert mail.due_at >= until and mail.due_at - until < timedelta(days=1)
    [enrolment] = rows(engine, enrolments)
    assert enrolment.next_due_at == until
    assert rows(engine, consents)[-1].detail == "pause"

    later = now + timedelta(days=2)
    service.change_preferences(_prefs(service, row), "resume", now=later)
    assert subscriber(engine).paused_until is None
    assert rows(engine, outbox, outbox.c.id == queued)[0].due_at == later  # 12:00 in Berlin
    assert rows(engine, enrolments)[0].next_due_at == later
    assert rows(engine, consents)[-1].detail == "resume"


def test_unknown_preference_is_refused(service: Subscriptions) -> None:
    row = confirmed(service)
    with pytest.raises(SubscriptionError):
        service.change_preferences(_prefs(service, row), "delete-everyone", now=T0)
    with pytest.raises(TokenError):
        service.change_preferences(
            service.tokens.make("unsubscribe", row.public_id, now=T0), "pause", now=T0
        )


# Keys and retention ---------------------------------------------------------------


def test_key_rotation_keeps_suppressions_and_links_working(
    service: Subscriptions, engine: Engine, settings: Settings
) -> None:
    row = confirmed(service)
    token = service.tokens.make("unsubscribe", row.public_id, now=T0)
    service.unsubscribe(token, channel="link", now=T0)
    rotated = settings.model_copy(
        update={"secret_keys": [SecretStr("a-brand-new-key"), *settings.secret_keys]}
    )
    after = make_service(rotated, engine)
    with engine.begin() as conn:
        assert suppression_ops.is_suppressed(conn, rotated, "jane@example.com")
        assert not suppression_ops.add(conn, rotated, "jane@example.com", reason="bounce", now=T0)
    assert len(rows(engine, suppressions)) == 1
    assert after.unsubscribe(token, channel="link", now=T0) is False  # old token still valid
    # Re-confirming under the new keys lifts the entry.
    later = T0 + timedelta(hours=1)
    after.sign_up(request(), now=later)
    after.confirm(after.tokens.make("confirm", row.public_id, now=later), now=later)
    assert rows(engine, suppressions) == []


def _keys(settings: Settings, *keys: str, suppression_key: str | None = None) -> Settings:
    return settings.model_copy(
        update={
            "secret_keys": [SecretStr(k) for k in keys],
            "suppression_key": SecretStr(suppression_key) if suppression_key else None,
        }
    )


def _suppressed(engine: Engine, settings: Settings, email: str) -> bool:
    with engine.connect() as conn:
        return suppression_ops.is_suppressed(conn, settings, email)


def test_retiring_a_secret_key_never_lifts_a_suppression(
    engine: Engine, settings: Settings
) -> None:
    from nurture.subscriptions import gdpr

    first = _keys(settings, "old")
    gdpr.erase(engine, first, "erased@example.com", T0)
    rotated = _keys(settings, "new", "old")
    assert _suppressed(engine, rotated, "erased@example.com")
    with engine.begin() as conn:  # suppressed while "new" signs links
        suppression_ops.add(conn, rotated, "bounced@example.com", reason="bounce", now=T0)

    # "new" is retired in turn; the first key stays listed (it hashes the list).
    again = _keys(settings, "newer", "old")

    assert _suppressed(engine, again, "erased@example.com")
    assert _suppressed(engine, again, "bounced@example.com")
    # Setting SUPPRESSION_KEY later keeps finding what the listed keys hashed.
    dedicated = _keys(settings, "newer", "old", suppression_key="never-rotated")
    assert _suppressed(engine, dedicated, "erased@example.com")
    assert _suppressed(engine, dedicated, "bounced@example.com")


def test_with_a_suppression_key_secret_keys_rotate_freely(
    engine: Engine, settings: Settings, tmp_path: Any
) -> None:
    from nurture.subscriptions import gdpr

    first = _keys(settings, "k1", suppression_key="never-rotated")
    service = make_service(first, engine)
    row = confirmed(service)
    service.unsubscribe(
        service.tokens.make("unsubscribe", row.public_id, now=T0), channel="link", now=T0
    )
    gdpr.erase(engine, first, "erased@example.com", T0)

    for keys in (("k2", "k1"), ("k2",), ("k3",)):
        later = _keys(settings, *keys, suppression_key="never-rotated")
        assert _suppressed(engine, later, "jane@example.com"), keys
        assert _suppressed(engine, later, "erased@example.com"), keys
    # Neither an import nor a bare sign-up brings an address back under the new keys.
    latest = _keys(settings, "k3", suppression_key="never-rotated")
    path = tmp_path / "people.csv"
    path.write_text("email,consent_source,consent_date\nerased@example.com,old list,2025-01-01\n")
    report = gdpr.import_csv(engine, latest, path, T0, campaigns={CAMPAIGN})
    assert (report.imported, report.suppressed) == (0, [2])
    make_service(latest, engine).sign_up(request("erased@example.com"), now=T0)
    assert subscriber(engine, "erased@example.com").status == "pending"
    assert _suppressed(engine, latest, "erased@example.com")


def test_an_entry_under_an_older_key_moves_to_the_current_one(
    engine: Engine, settings: Settings
) -> None:
    from nurture.mail.addresses import email_hash

    before = _keys(settings, "k1")
    with engine.begin() as conn:
        suppression_ops.add(conn, before, "jane@example.com", reason="unsubscribe", now=T0)
    dedicated = _keys(settings, "k1", suppression_key="never-rotated")
    with engine.begin() as conn:
        assert not suppression_ops.add(conn, dedicated, "jane@example.com", reason="bounce", now=T0)
    [entry] = rows(engine, suppressions)
    assert entry.email_hash == email_hash("never-rotated", "jane@example.com")
    assert (entry.reason, entry.created_at) == ("unsubscribe", T0)
    assert _suppressed(
        engine, _keys(settings, "k9", suppression_key="never-rotated"), "jane@example.com"
    )


def test_a_consent_record_is_never_refused_for_its_text(engine: Engine) -> None:
    with engine.begin() as conn:
        consent_ops.record(
            conn,
            subscriber_id=None,
            action="import",
            channel="import",
            now=T0,
            detail="source: paper\x00form \ud800",
            user_agent="x" * 400,
        )
    [record] = rows(engine, consents)
    assert record.detail == "source: paper\ufffdform \ufffd"
    assert record.user_agent == "x" * 300


def test_ip_addresses_are_purged_after_retention(engine: Engine, settings: Settings) -> None:
    with engine.begin() as conn:
        for age in (40, 31, 29):
            consent_ops.record(
                conn,
                subscriber_id=None,
                action="opt_in",
                channel="form",
                now=T0 - timedelta(days=age),
                ip="198.51.100.1",
                user_agent="ua",
            )
        assert consent_ops.purge_expired_ips(conn, settings, T0) == 2
        assert consent_ops.purge_expired_ips(conn, settings, T0) == 0
    assert [(c.ip, c.user_agent) for c in rows(engine, consents)] == [
        (None, "ua"),
        (None, "ua"),
        ("198.51.100.1", "ua"),
    ]


def test_changing_a_subscriber_refuses_a_name_that_is_not_a_column(
    service: Subscriptions, engine: Engine
) -> None:
    """The statement is built once and the values given with it, where a misspelt name
    would be ignored without a word: it is refused, and nothing changes."""
    row = confirmed(service)
    with engine.begin() as conn, pytest.raises(ValueError, match="firstname"):
        subscriber_ops.change(conn, row.id, firstname="Ann")
    with engine.begin() as conn:
        subscriber_ops.change(conn, row.id, first_name="Ann")
    assert subscriber(engine, row.email).first_name == "Ann"


def test_creating_a_subscriber_returns_the_row_as_a_lookup_reads_it(engine: Engine) -> None:
    """A sign-up takes the new row from the INSERT itself (no second read); an address
    that exists already (a sign-up racing this one) gives ``None``, and the caller reads
    the other one's row."""
    values = {
        "public_id": "pub-new",
        "email": "new@example.org",
        "first_name": "Sam",
        "timezone": "Europe/London",
        "status": "pending",
        "newsletters": True,
        "source_campaign": "what-i-actually-do",
        "created_at": T0,
    }
    with engine.begin() as conn:
        created = subscriber_ops.create(conn, values)
        assert created is not None
        assert created == subscriber_ops.by_email(conn, "new@example.org")
        assert created.created_at == T0 and created.status == "pending"
        assert subscriber_ops.create(conn, {**values, "public_id": "pub-other"}) is None
