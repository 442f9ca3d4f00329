"""What went wrong in review, kept from coming back: catalogue changes mid-sequence,
opt-outs racing planning, MAX_SEND_RATE across threads, errors in worker threads,
a connection-keeping provider shared with sign-ups, a webhook batch with a bad event.
"""

from __future__ import annotations

import dataclasses
import email
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, insert, select, text, update

from nurture.delivery import planning
from nurture.exceptions import ConfigurationError
from nurture.mail.messages import Batch
from nurture.providers.base import SendResult
from nurture.runtime import jobs
from nurture.settings import Settings
from nurture.store import claims
from nurture.store import outbox as outbox_ops
from nurture.store.schema import enrolments, outbox, subscribers, suppressions
from nurture.testing import FakeClock, FakeProvider
from nurture.webhooks.base import DeliveryEvent
from tests.helpers import (
    NOW,
    Collector,
    add_confirmed,
    add_outbox,
    queue_newsletter,
    sends_to,
    serve_smtp,
    services_for,
    smtp_settings,
    statuses,
    subscribe_and_confirm,
)

SLUG = "what-i-actually-do"


def reorder(services, order: list[int]) -> None:  # type: ignore[no-untyped-def]
    campaign = services.catalogue.campaigns[SLUG]
    steps = tuple(campaign.steps[i] for i in order)
    services.catalogue.campaigns[SLUG] = dataclasses.replace(campaign, steps=steps)


def hours(services, clock: FakeClock, count: int) -> None:  # type: ignore[no-untyped-def]
    for _ in range(count):
        clock.advance(hours=1)
        jobs.tick(services)


def test_reordered_campaign_continues_after_the_step_sent(
    settings: Settings, engine: Engine
) -> None:
    clock = FakeClock(datetime(2026, 5, 4, 9, 0, tzinfo=UTC))
    services = services_for(settings, engine, clock, FakeProvider())
    subscribe_and_confirm(services, clock, "a@example.org", SLUG)
    hours(services, clock, 2)
    assert [s for _, s, _ in sends_to(services, "a@example.org")] == ["01-welcome"]
    count = len(services.catalogue.campaigns[SLUG].steps)
    reorder(services, [1, 0, *range(2, count)])  # the welcome is now second
    hours(services, clock, 24 * 40)
    sent = [s for _, s, _ in sends_to(services, "a@example.org")]
    assert len(sent) == len(set(sent)), "no step twice"
    assert sent[-1] == "10-an-open-door"
    with engine.connect() as conn:
        assert conn.execute(select(enrolments.c.status)).scalar_one() == "completed"


def test_a_removed_step_does_not_strand_the_sequence(settings: Settings, engine: Engine) -> None:
    clock = FakeClock(datetime(2026, 5, 4, 9, 0, tzinfo=UTC))
    services = services_for(settings, engine, clock, FakeProvider())
    subscribe_and_confirm(services, clock, "b@example.org", SLUG)
    hours(services, clock, 2)
    clock.advance(days=3)
    planning.plan(services.engine, services.catalogue, settings, now=clock.now())  # step 2 queued
    count = len(services.catalogue.campaigns[SLUG].steps)
    reorder(services, [0, *range(2, count)])  # the queued step 2 is removed
    hours(services, clock, 24 * 40)
    sent = [s for _, s, _ in sends_to(services, "b@example.org")]
    assert "02-saying-it-out-loud" not in sent
    assert sent[-1] == "10-an-open-door"
    with engine.connect() as conn:
        assert conn.execute(select(enrolments.c.status)).scalar_one() == "completed"


def test_newsletters_turned_off_after_planning_are_not_sent(
    settings: Settings, engine: Engine
) -> None:
    queue_newsletter(engine, 3)
    with engine.begin() as conn:
        conn.execute(
            update(subscribers)
            .where(subscribers.c.email == "reader1@example.org")
            .values(newsletters=False)
        )
    clock = FakeClock(NOW)
    provider = FakeProvider()
    services = services_for(settings, engine, clock, provider)
    services.dispatcher.dispatch()
    assert sorted(e for e, _ in provider.sent) == ["reader0@example.org", "reader2@example.org"]
    assert statuses(engine) == {"sent": 2, "cancelled": 1}


class ThreadSafeFake(FakeProvider):
    thread_safe = True

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def send_chunk(self, batch: Batch) -> list[SendResult]:
        with self._lock:
            return super().send_chunk(batch)


def test_max_send_rate_holds_across_worker_threads(settings: Settings, engine: Engine) -> None:
    queue_newsletter(engine, 100)
    settings.max_send_rate = 20
    settings.dispatch_workers = 4
    clock = FakeClock(NOW)
    services = services_for(settings, engine, clock, ThreadSafeFake())
    waits: list[float] = []
    lock = threading.Lock()

    def record(seconds: float) -> None:
        with lock:
            waits.append(seconds)

    services.dispatcher.sleep = record
    services.dispatcher.dispatch()
    # Five batches of 20 at 20/s: the last may start 4 s after the first, whatever the
    # number of threads (each reserves its slot before waiting).
    assert statuses(engine) == {"sent": 100}
    assert max(waits) >= 3.0  # (threads racing for one slot would all wait about 1 s)


class RefusesTheKey(ThreadSafeFake):
    def send_chunk(self, batch: Batch) -> list[SendResult]:
        raise ConfigurationError("SendGrid refused the API key")


def test_a_refused_key_in_a_worker_thread_fails_the_pass(
    settings: Settings, engine: Engine
) -> None:
    queue_newsletter(engine, 30)
    settings.dispatch_workers = 3
    settings.dispatch_batch_size = 10
    clock = FakeClock(NOW)
    services = services_for(settings, engine, clock, RefusesTheKey())
    with pytest.raises(ConfigurationError):
        jobs.dispatch(services)
    assert statuses(engine) == {"queued": 30}  # nothing lost, nothing half-sent
    _healthy, detail = services.health.status(NOW)
    assert "refused the API key" in detail.get("last_error", "")
    assert not services.dispatcher.stopping  # a failed pass is not a shutdown


def test_a_batch_that_cannot_be_built_goes_back_to_the_queue(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recipients are built after the rows are marked ``sending``: a failure there (a bug,
    memory) must hand them straight back, not leave them to expire into ``unknown``."""
    queue_newsletter(engine, 5)
    clock = FakeClock(NOW)
    provider = FakeProvider()
    services = services_for(settings, engine, clock, provider)
    composer = services.dispatcher.composer

    def broken(*args: object, **kwargs: object) -> None:
        raise MemoryError("no room for the batch")

    monkeypatch.setattr(composer, "recipients_for", broken)
    with pytest.raises(MemoryError):
        services.dispatcher.dispatch()
    assert statuses(engine) == {"queued": 5}
    assert provider.sent == []
    assert claimed(engine) == []  # the claim ended with the rows' return
    monkeypatch.undo()
    assert services.dispatcher.dispatch().sent == 5
    assert statuses(engine) == {"sent": 5}


def test_smtp_connection_is_never_shared_between_threads(
    settings: Settings, engine: Engine
) -> None:
    collector = Collector()
    controller = serve_smtp(collector)
    try:
        queue_newsletter(engine, 120)
        smtp = smtp_settings(settings, controller.port)
        clock = FakeClock(NOW)
        services = services_for(smtp, engine, clock, None)  # type: ignore[arg-type]
        with engine.connect() as conn:
            ids = list(conn.execute(select(outbox.c.id).order_by(outbox.c.id.desc())).scalars())
        pass_thread = threading.Thread(target=services.dispatcher.dispatch)
        pass_thread.start()
        for row_id in ids[:20]:  # sign-up confirmations going out at the same time
            services.dispatcher.send_now(row_id)
        pass_thread.join()
    finally:
        controller.stop()
    assert statuses(engine) == {"sent": 120}
    envelopes = Counter(tuple(r.rcpt_tos) for r in collector.received)
    assert all(len(rcpts) == 1 and n == 1 for rcpts, n in envelopes.items())
    for received in collector.received:
        assert email.message_from_bytes(received.data)["To"] == received.rcpt_tos[0]


def test_one_bad_event_does_not_lose_the_rest_of_its_batch(
    settings: Settings, engine: Engine
) -> None:
    queue_newsletter(engine, 2)
    clock = FakeClock(NOW)
    services = services_for(settings, engine, clock, FakeProvider())

    def broken(*args: object, **kwargs: object) -> int:
        raise RuntimeError("a state nobody foresaw")

    import nurture.delivery.events as module

    original = module.reconcile_sent
    module.reconcile_sent = broken  # type: ignore[assignment]
    try:
        events = [
            DeliveryEvent("e1", "processed", "reader0@example.org", 1, NOW, None, {}),
            DeliveryEvent("e2", "spamreport", "reader1@example.org", 2, NOW, None, {}),
        ]
        assert services.delivery_events.apply(events, now=NOW) == 1
    finally:
        module.reconcile_sent = original
    with engine.connect() as conn:
        assert conn.execute(select(suppressions.c.reason)).scalars().all() == ["spamreport"]
        status = conn.execute(
            select(subscribers.c.status).where(subscribers.c.email == "reader1@example.org")
        ).scalar_one()
    assert status == "unsubscribed"


def test_a_429_storm_only_delays(settings: Settings, engine: Engine) -> None:
    class Storm(FakeProvider):
        def __init__(self) -> None:
            super().__init__()
            self.left = 12

        def send_chunk(self, batch: Batch) -> list[SendResult]:
            if self.left:
                self.left -= 1
                return [
                    SendResult(r, "retry", error="429", retry_after=1) for r in batch.recipients
                ]
            return super().send_chunk(batch)

    queue_newsletter(engine, 10)
    clock = FakeClock(NOW)
    provider = Storm()
    services = services_for(settings, engine, clock, provider)
    services.dispatcher.sleep = lambda seconds: None
    for _ in range(20):
        services.dispatcher.dispatch()
        clock.advance(seconds=2)
    assert statuses(engine) == {"sent": 10}
    assert sorted(e for e, _ in provider.sent) == sorted(
        f"reader{i}@example.org" for i in range(10)
    )
    assert clock.now() - NOW < timedelta(minutes=5)


def test_an_email_still_undelivered_after_the_give_up_window_fails(
    settings: Settings, engine: Engine
) -> None:
    class Down(FakeProvider):
        def send_chunk(self, batch: Batch) -> list[SendResult]:
            return [SendResult(r, "retry", error="SendGrid 503") for r in batch.recipients]

    queue_newsletter(engine, 2)
    with engine.begin() as conn:  # planned three days ago, down ever since
        conn.execute(update(outbox).values(created_at=NOW - timedelta(days=3)))
    clock = FakeClock(NOW)
    services = services_for(settings, engine, clock, Down())
    services.dispatcher.dispatch()
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.status, outbox.c.error)).all()
    assert [r.status for r in rows] == ["failed", "failed"]
    assert all(r.error.startswith("gave up after 48") for r in rows)


def test_newsletter_planning_goes_by_chunks_and_resumes_after_a_crash(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nurture.campaigns import load_catalogue
    from nurture.store.schema import newsletter_runs

    add_confirmed(engine, 10, at=NOW - timedelta(days=30))
    catalogue = load_catalogue(settings)
    letter = next(iter(catalogue.newsletters.values()))
    monkeypatch.setattr(planning, "CHUNK", 3)
    original = planning._plan_chunk
    calls = {"n": 0}

    def dies_on_the_second_chunk(*args: object, **kwargs: object) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("the planner's process died")
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(planning, "_plan_chunk", dies_on_the_second_chunk)
    with pytest.raises(RuntimeError):
        planning.plan_newsletters(engine, catalogue, settings, now=letter.send_at)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 3
    # The next tick resumes after the committed chunk.
    planning.plan_newsletters(engine, catalogue, settings, now=letter.send_at)
    planning.plan_newsletters(engine, catalogue, settings, now=letter.send_at)  # a no-op
    with engine.connect() as conn:
        planned = conn.execute(select(outbox.c.subscriber_id)).scalars().all()
        run = conn.execute(select(newsletter_runs)).one()
    assert sorted(planned) == list(range(1, 11))
    assert (run.done, run.recipients) == (True, 10)


def test_planning_a_newsletter_skips_a_subscriber_who_already_has_it(
    settings: Settings, engine: Engine
) -> None:
    """The unique key holds even when a chunk meets a row already there (PostgreSQL
    plans with a plain INSERT first, then again skipping what is there)."""
    from nurture.campaigns import load_catalogue

    add_confirmed(engine, 6, at=NOW - timedelta(days=30))
    catalogue = load_catalogue(settings)
    letter = next(iter(catalogue.newsletters.values()))
    there = add_outbox(engine, 4, letter.slug, "sent", campaign="newsletters", kind="newsletter")
    planning.plan_newsletters(engine, catalogue, settings, now=letter.send_at)
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.subscriber_id, outbox.c.id, outbox.c.status)).all()
    assert sorted(r.subscriber_id for r in rows) == [1, 2, 3, 4, 5, 6]
    assert [(r.id, r.status) for r in rows if r.subscriber_id == 4] == [(there, "sent")]


def test_taking_rows_compares_and_reads_times_as_they_are_stored(engine: Engine) -> None:
    """Rows are taken through the driver on SQLite: a row due on the very second is due,
    one due a microsecond later is not, and a running pause comes back as an aware time."""
    now = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)  # a whole second: no microseconds
    paused = now + timedelta(days=3, microseconds=250)
    with engine.begin() as conn:
        subscriber_id = conn.execute(
            insert(subscribers)
            .values(
                public_id="p-take",
                email="take@example.org",
                status="confirmed",
                paused_until=paused,
                created_at=now,
            )
            .returning(subscribers.c.id)
        ).scalar_one()
    due = add_outbox(engine, subscriber_id, "one", "queued", due_at=now, created_at=now)
    later = now + timedelta(microseconds=1)
    add_outbox(engine, subscriber_id, "two", "queued", due_at=later, created_at=now)
    with engine.begin() as conn:
        taken = outbox_ops.take(conn, now=now, limit=10)
    assert [row.id for row in taken] == [due]
    assert taken[0].paused_until == paused
    assert taken[0].email == "take@example.org"
    assert not taken[0].expired and not taken[0].stale


def claimed(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return sorted(claims.claimed_ids(conn))


def test_a_claim_names_its_rows_in_flight_until_its_lease_ends_it(
    settings: Settings, engine: Engine
) -> None:
    """No index holds the rows ``sending``: their batch's claim does, and when its lease
    runs out it turns the rows it still holds ``unknown`` (the one already recorded
    stays sent), then ends. The studio's queue figures read the same."""
    from nurture.campaigns import load_catalogue
    from nurture.store import stats

    def queue() -> tuple[int, int]:
        figures = stats.read(engine, load_catalogue(settings), now=NOW)["queue"]
        return figures["sending"], figures["unknown"]

    queue_newsletter(engine, 5)
    lease = timedelta(minutes=5)
    with engine.begin() as conn:
        ids = [row.id for row in outbox_ops.take(conn, now=NOW, limit=3)]
        outbox_ops.start_sending(conn, ids, token="worker:1", now=NOW, lease=lease)
    assert claimed(engine) == sorted(ids)
    assert queue() == (3, 0)
    with engine.begin() as conn:
        assert outbox_ops.sending(conn) == 3
        outbox_ops.mark_group_sent(conn, ids[:1], message_id="m-1", now=NOW)
        assert outbox_ops.sending(conn) == 2
        assert outbox_ops.expire_leases(conn, now=NOW + lease - timedelta(seconds=1)) == 0
    with engine.begin() as conn:
        assert outbox_ops.expire_leases(conn, now=NOW + lease + timedelta(seconds=1)) == 2
    assert claimed(engine) == []
    assert statuses(engine) == {"sent": 1, "unknown": 2, "queued": 2}
    assert queue() == (0, 2)


def test_every_claim_ends_with_its_batch(settings: Settings, engine: Engine) -> None:
    queue_newsletter(engine, 5)
    services = services_for(settings, engine, FakeClock(NOW), FakeProvider())
    assert services.dispatcher.dispatch().sent == 5
    assert claimed(engine) == []


class _Forgetful(FakeProvider):
    """Loses the last recipient's result: a provider breaking its contract."""

    def send(self, batch: Batch) -> list[SendResult]:
        return super().send(batch)[:-1]


class _Duplicating(FakeProvider):
    """Answers for the first recipient twice and never for the last: the right count of
    results, the wrong rows."""

    def send(self, batch: Batch) -> list[SendResult]:
        results = super().send(batch)
        return [*results[:-1], results[0]]


@pytest.mark.parametrize("provider", [_Forgetful, _Duplicating])
def test_a_row_without_an_outcome_is_left_to_its_lease(
    settings: Settings, engine: Engine, provider: type[FakeProvider]
) -> None:
    """A batch recorded without every row's outcome keeps its claim: the row left
    ``sending`` is not stranded there, its lease turns it ``unknown``."""
    queue_newsletter(engine, 3)
    clock = FakeClock(NOW)
    services_for(settings, engine, clock, provider()).dispatcher.dispatch()
    assert statuses(engine) == {"sent": 2, "sending": 1}
    assert len(claimed(engine)) == 3
    with engine.begin() as conn:
        later = clock.now() + timedelta(seconds=settings.lease_seconds + 1)
        assert outbox_ops.expire_leases(conn, now=later) == 1
    assert statuses(engine) == {"sent": 2, "unknown": 1}
    assert claimed(engine) == []


# PostgreSQL only: SQLite has no row locks, its writers take turns.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_recording_a_batch_never_waits_on_housekeeping_for_its_claim(engine: Engine) -> None:
    """A batch's record ends its claim before touching its rows, as expire_leases locks
    a claim before the rows; the other order deadlocked when a lease ran out during the
    record. While a record is open, housekeeping passes its claim by."""
    queue_newsletter(engine, 3)
    lease = timedelta(minutes=5)
    with engine.begin() as conn:
        ids = [row.id for row in outbox_ops.take(conn, now=NOW, limit=10)]
        outbox_ops.start_sending(conn, ids, token="worker:1", now=NOW, lease=lease)
    later = NOW + lease + timedelta(minutes=1)
    with engine.connect() as recording, recording.begin():
        outbox_ops.release(recording, "worker:1")  # as Dispatcher._record does, first
        outbox_ops.mark_group_sent(recording, ids, message_id="m-1", now=later)
        with engine.connect() as housekeeping, housekeeping.begin():
            housekeeping.execute(text("SET LOCAL lock_timeout = '2s'"))
            assert outbox_ops.expire_leases(housekeeping, now=later) == 0
    assert statuses(engine) == {"sent": 3}
    assert claimed(engine) == []
