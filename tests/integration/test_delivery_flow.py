"""Issue 4's promises, end to end with an injected clock, on SQLite and PostgreSQL.

Every step of both sequences exactly once, at the right local times, across a DST
change; nobody mailed outside their window; unsubscribing mid-sequence stops the rest;
expired newsletters never go out; two dispatchers never send the same row.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select

from nurture.runtime import jobs
from nurture.runtime.services import Services
from nurture.settings import Settings
from nurture.store.schema import enrolments, outbox
from nurture.testing import FakeClock, FakeProvider
from tests.helpers import (
    add_confirmed,
    last_value,
    sends_to,
    services_for,
    subscribe_and_confirm,
    token_of,
)

NEW_YORK = ZoneInfo("America/New_York")


def run_ticks(services: Services, clock: FakeClock, *, hours: int, step_minutes: int = 60) -> None:
    for _ in range(hours * 60 // step_minutes):
        clock.advance(minutes=step_minutes)
        jobs.tick(services)


def test_both_sequences_once_each_in_window_across_dst(settings: Settings, engine: Engine) -> None:
    # Confirmed late on a Friday evening in New York, twelve days before DST starts.
    clock = FakeClock(datetime(2026, 2, 25, 3, 30, tzinfo=UTC))  # 22:30 EST
    services = services_for(settings, engine, clock, FakeProvider())
    email = "reader@example.org"
    subscribe_and_confirm(services, clock, email, "what-i-actually-do", timezone="America/New_York")
    clock.advance(minutes=11)  # one confirmation per address per 10 minutes
    subscribe_and_confirm(services, clock, email, "beginning-therapy", timezone="America/New_York")

    run_ticks(services, clock, hours=24 * 34)

    sent = sends_to(services, email)
    for slug in ("what-i-actually-do", "beginning-therapy"):
        steps = [s.slug for s in services.catalogue.campaigns[slug].steps]
        received = [step for campaign, step, _ in sent if campaign == slug]
        assert received == steps, slug  # every step, in order, exactly once
    times = [at for _, _, at in sent]
    assert all(at is not None for at in times)
    for at in times:
        assert at is not None
        local = at.astimezone(NEW_YORK)
        assert time(8) <= local.time() < time(20), local
    # The first step waited for 08:00 local instead of going out at 22:30.
    assert times[0] is not None and times[0].astimezone(NEW_YORK).hour == 8
    # Sends happened on both sides of the DST change (2026-03-08).
    dst = datetime(2026, 3, 8, 7, tzinfo=UTC)
    assert any(t is not None and t < dst for t in times)
    assert any(t is not None and t > dst for t in times)
    # Delays are honoured between consecutive steps of one sequence.
    steps = services.catalogue.campaigns["what-i-actually-do"].steps
    mine = [at for c, _, at in sent if c == "what-i-actually-do"]
    for previous, current, step in zip(mine, mine[1:], steps[1:], strict=False):
        assert previous is not None and current is not None
        assert current - previous >= step.delay
    with engine.connect() as conn:
        statuses = set(conn.execute(select(enrolments.c.status)).scalars())
    assert statuses == {"completed"}


def test_unsubscribe_mid_sequence_stops_the_rest(settings: Settings, engine: Engine) -> None:
    clock = FakeClock(datetime(2026, 5, 4, 13, 0, tzinfo=UTC))  # 14:00 in London
    provider = FakeProvider()
    services = services_for(settings, engine, clock, provider)
    email = "midway@example.org"
    subscribe_and_confirm(services, clock, email, "what-i-actually-do")
    run_ticks(services, clock, hours=24 * 3)
    assert [s for _, s, _ in sends_to(services, email)] == ["01-welcome", "02-saying-it-out-loud"]

    unsubscribe_url = last_value(services, email, "unsubscribe_url")
    services.subscriptions.unsubscribe(token_of(unsubscribe_url), channel="link", now=clock.now())
    run_ticks(services, clock, hours=24 * 30)

    assert len(sends_to(services, email)) == 2
    with engine.connect() as conn:
        queued = conn.execute(
            select(func.count()).where(outbox.c.status.in_(("queued", "sending")))
        ).scalar_one()
    assert queued == 0


def test_a_dispatcher_back_after_a_night_away_waits_for_the_window(
    settings: Settings, engine: Engine
) -> None:
    clock = FakeClock(datetime(2026, 5, 4, 17, 0, tzinfo=UTC))  # 18:00 in London
    provider = FakeProvider()
    services = services_for(settings, engine, clock, provider)
    email = "night@example.org"
    subscribe_and_confirm(services, clock, email, "beginning-therapy")
    # Planned now (in the window) but the dispatcher only comes back at 03:00 local.
    from nurture.delivery import planning

    planning.plan(services.engine, services.catalogue, settings, now=clock.now())
    clock.current = datetime(2026, 5, 5, 2, 0, tzinfo=UTC)
    services.dispatcher.dispatch()
    assert sends_to(services, email) == []
    clock.current = datetime(2026, 5, 5, 7, 0, tzinfo=UTC)  # 08:00 BST
    services.dispatcher.dispatch()
    assert [s for _, s, _ in sends_to(services, email)] == ["01-the-first-step"]


def test_newsletter_goes_once_and_never_after_not_after(settings: Settings, engine: Engine) -> None:
    clock = FakeClock(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    provider = FakeProvider()
    services = services_for(settings, engine, clock, provider)
    subscribe_and_confirm(services, clock, "early@example.org", "beginning-therapy")
    letter = next(iter(services.catalogue.newsletters.values()))
    assert letter.not_after is not None

    # The planner is down until after "not after": nothing goes out, ever.
    late = FakeClock(letter.not_after + timedelta(minutes=1))
    late_services = services_for(settings, engine, late, provider)
    jobs.tick(late_services)
    assert [s for c, s, _ in sends_to(services, "early@example.org") if c == "newsletters"] == []

    # Planned in time but dispatched after not_after: cancelled as expired.
    clock.current = letter.send_at
    from nurture.delivery import planning

    planning.plan_newsletters(engine, services.catalogue, settings, now=clock.now())
    late_services.dispatcher.dispatch()
    with engine.connect() as conn:
        rows = conn.execute(
            select(outbox.c.status, outbox.c.error).where(outbox.c.campaign == "newsletters")
        ).all()
    assert [(r.status, r.error) for r in rows] == [("cancelled", "expired")]


def test_newsletter_reaches_each_subscriber_exactly_once(
    settings: Settings, engine: Engine
) -> None:
    clock = FakeClock(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    provider = FakeProvider()
    services = services_for(settings, engine, clock, provider)
    for i in range(5):
        subscribe_and_confirm(services, clock, f"n{i}@example.org", "beginning-therapy")
    letter = next(iter(services.catalogue.newsletters.values()))
    clock.current = letter.send_at
    for _ in range(6):  # repeated ticks, and a second planner, change nothing
        jobs.tick(services)
        clock.advance(minutes=30)
    counts = Counter(
        email for email, batch in provider.sent if batch.content.campaign == "newsletters"
    )
    assert counts == {f"n{i}@example.org": 1 for i in range(5)}


@pytest.mark.parametrize("workers", [2])
def test_two_dispatchers_never_send_the_same_row(
    settings: Settings, engine: Engine, workers: int
) -> None:
    from nurture.store import outbox as outbox_ops

    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    ids = add_confirmed(engine, 1500, at=now)
    with engine.begin() as conn:
        letter = "2026-12-08-winter-note"
        outbox_ops.enqueue(
            conn,
            [
                {
                    "subscriber_id": i,
                    "kind": "newsletter",
                    "campaign": "newsletters",
                    "step": letter,
                    "due_at": now,
                }
                for i in ids
            ],
            now=now,
        )
    settings.dispatch_batch_size = 50
    clock = FakeClock(now)
    providers = [FakeProvider() for _ in range(workers)]
    dispatchers = [services_for(settings, engine, clock, p).dispatcher for p in providers]
    threads = [threading.Thread(target=d.dispatch) for d in dispatchers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent = [email for p in providers for email, _ in p.sent]
    assert len(sent) == 1500
    assert len(set(sent)) == 1500
    # A claim never takes more than it asked for (PostgreSQL may re-run a LIMIT subquery).
    assert all(len(b.recipients) <= 50 for p in providers for b in p.batches)
    if engine.dialect.name == "postgresql":  # SKIP LOCKED lets them claim side by side
        assert all(p.sent for p in providers), "both dispatchers took part"
