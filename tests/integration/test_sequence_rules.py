"""How a sequence behaves as the writer changes it (issue 14): drafts are never sent,
send days hold in the reader's zone across DST, evergreen (``hold``) sequences deliver
steps added later, and a step inserted before where a reader sits is skipped for them
(the rule the README and the studio state), while one inserted after them arrives next,
after its delay."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from nurture.campaigns import Campaign, Step
from nurture.runtime import jobs
from nurture.runtime.services import Services
from nurture.settings import Settings
from nurture.store.schema import enrolments, outbox
from nurture.testing import FakeClock, FakeProvider
from tests.helpers import sends_to, services_for, subscribe_and_confirm

SLUG = "beginning-therapy"
READER = "reader@example.org"


def campaign(services: Services) -> Campaign:
    return services.catalogue.campaigns[SLUG]


def change(services: Services, **fields: object) -> None:
    services.catalogue.campaigns[SLUG] = dataclasses.replace(campaign(services), **fields)


def new_step(services: Services, slug: str, *, delay: timedelta) -> Step:
    model = campaign(services).steps[1]
    return dataclasses.replace(model, slug=slug, subject=f"New: {slug}", delay=delay)


def run(services: Services, clock: FakeClock, *, days: int) -> None:
    for _ in range(days * 4):
        jobs.tick(services)
        clock.advance(hours=6)


def steps_sent(services: Services) -> list[str]:
    return [step for _, step, _ in sends_to(services, READER)]


def enrolment_status(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(select(enrolments.c.status)).scalar_one())


def start(settings: Settings, engine: Engine, when: datetime) -> tuple[Services, FakeClock]:
    clock = FakeClock(when)
    services = services_for(settings, engine, clock, FakeProvider())
    subscribe_and_confirm(services, clock, READER, SLUG, timezone="Europe/London")
    return services, clock


MONDAY = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def test_a_draft_step_is_never_sent(settings: Settings, engine: Engine) -> None:
    services, clock = start(settings, engine, MONDAY)
    steps = campaign(services).steps
    draft = dataclasses.replace(steps[1], draft=True)
    change(services, steps=(steps[0], *steps[2:]), drafts=(draft,))
    run(services, clock, days=60)
    sent = steps_sent(services)
    assert draft.slug not in sent
    assert sent == [s.slug for s in campaign(services).steps]
    assert enrolment_status(engine) == "completed"


def test_send_days_hold_in_the_readers_zone_across_dst(settings: Settings, engine: Engine) -> None:
    # Friday 27 March 2026, 21:00 in London: after the window; BST starts on Sunday.
    services, clock = start(settings, engine, datetime(2026, 3, 27, 21, 0, tzinfo=UTC))
    change(services, send_days=frozenset(range(5)))
    run(services, clock, days=40)
    sent = sends_to(services, READER)
    assert sent, "the sequence went out"
    with engine.connect() as conn:
        first_due = (
            conn.execute(
                select(outbox.c.due_at).where(outbox.c.kind == "sequence").order_by(outbox.c.id)
            )
            .scalars()
            .first()
        )
    # Planned for Monday 08:00 in London, which is 07:00 UTC now that BST has begun.
    assert first_due == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    for _, _, at in sent:
        assert at is not None
        assert at.astimezone(ZoneInfo("Europe/London")).weekday() < 5, f"sent on a weekend: {at}"


def test_evergreen_readers_get_a_step_added_later(settings: Settings, engine: Engine) -> None:
    services, clock = start(settings, engine, MONDAY)
    change(services, hold=True)
    run(services, clock, days=60)
    assert enrolment_status(engine) == "held"
    added = new_step(services, "08-added-later", delay=timedelta(days=2))
    change(services, steps=(*campaign(services).steps, added))
    run(services, clock, days=1)
    assert added.slug not in steps_sent(services)  # not at once: after its delay
    run(services, clock, days=3)
    assert steps_sent(services)[-1] == added.slug
    assert enrolment_status(engine) == "held"


def test_without_hold_finished_readers_never_get_later_steps(
    settings: Settings, engine: Engine
) -> None:
    services, clock = start(settings, engine, MONDAY)
    run(services, clock, days=60)
    assert enrolment_status(engine) == "completed"
    added = new_step(services, "08-added-later", delay=timedelta(days=2))
    change(services, steps=(*campaign(services).steps, added))
    run(services, clock, days=10)
    assert added.slug not in steps_sent(services)


def test_a_step_inserted_before_the_reader_is_skipped_one_after_comes_next(
    settings: Settings, engine: Engine
) -> None:
    services, clock = start(settings, engine, MONDAY)
    original = [s.slug for s in campaign(services).steps]
    while len(steps_sent(services)) < 3:
        run(services, clock, days=1)
    assert steps_sent(services) == original[:3]
    steps = campaign(services).steps
    before = new_step(services, "01b-inserted-before", delay=timedelta(days=1))
    after = new_step(services, "03b-inserted-after", delay=timedelta(days=1))
    change(services, steps=(steps[0], before, *steps[1:3], after, *steps[3:]))
    run(services, clock, days=60)
    sent = steps_sent(services)
    assert before.slug not in sent, "never mailed by surprise"
    assert sent == [*original[:3], after.slug, *original[3:]]
    assert len(sent) == len(set(sent))


def test_readers_who_join_before_any_step_is_published_get_the_first_one(
    settings: Settings, engine: Engine
) -> None:
    clock = FakeClock(MONDAY)
    services = services_for(settings, engine, clock, FakeProvider())
    everything = campaign(services).steps
    drafted = tuple(dataclasses.replace(s, draft=True) for s in everything)
    change(services, steps=(), drafts=drafted)  # a scaffold: every step still a draft
    subscribe_and_confirm(services, clock, READER, SLUG, timezone="Europe/London")
    run(services, clock, days=3)
    assert steps_sent(services) == []
    assert enrolment_status(engine) == "held"
    change(services, steps=everything, drafts=())  # published
    run(services, clock, days=60)
    assert steps_sent(services) == [s.slug for s in everything]
    assert enrolment_status(engine) == "completed"


def test_a_step_removed_before_the_reader_moves_nobody_back_or_forward(
    settings: Settings, engine: Engine
) -> None:
    services, clock = start(settings, engine, MONDAY)
    original = [s.slug for s in campaign(services).steps]
    while len(steps_sent(services)) < 3:
        run(services, clock, days=1)
    run(services, clock, days=0)
    steps = campaign(services).steps
    change(services, steps=steps[1:])  # the first email, long since sent, is removed
    run(services, clock, days=60)
    sent = steps_sent(services)
    assert sent == original, "no email skipped, none twice"
