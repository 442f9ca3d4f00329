"""Fencing tokens: a claim that outlived its lease never touches rows someone else holds.

The story (issue 8): dispatcher A's request hangs past its lease; housekeeping marks
its rows ``unknown`` and requeues them; dispatcher B claims them and is about to send.
Then A's late answer arrives. A late failure, retry or "unknown" must change nothing,
or B's rows go back to the queue and are sent twice. A late success is evidence the
email left and is recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from nurture.delivery.dispatch import DispatchReport
from nurture.mail.messages import Batch
from nurture.providers.base import Outcome, SendResult
from nurture.settings import Settings
from nurture.store import outbox as outbox_ops
from nurture.store.schema import outbox
from nurture.store.statuses import OutboxStatus
from nurture.testing import FakeClock, FakeProvider
from tests.helpers import NOW, queue_newsletter, services_for, statuses


class LateAnswer(FakeProvider):
    """Runs ``meanwhile`` while the request is "in flight", then answers ``outcome``."""

    def __init__(self, outcome: Outcome, *, maybe_sent: bool = False) -> None:
        super().__init__()
        self.outcome = outcome
        self.maybe_sent = maybe_sent
        self.meanwhile: Callable[[], None] = lambda: None

    def send_chunk(self, batch: Batch) -> list[SendResult]:
        self.meanwhile()
        if self.outcome == Outcome.SENT:
            return super().send_chunk(batch)
        return [
            SendResult(r, self.outcome, error="late answer", maybe_sent=self.maybe_sent)
            for r in batch.recipients
        ]


def workers(engine: Engine) -> list[tuple[str, str | None]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(outbox.c.status, outbox.c.worker))]


@pytest.mark.parametrize(
    ("outcome", "maybe_sent"),
    [(Outcome.RETRY, False), (Outcome.RETRY, True), (Outcome.FAILED, False)],
    ids=["503", "answer-lost", "refused"],
)
def test_a_stale_claim_leaves_rows_another_dispatcher_holds(
    settings: Settings, engine: Engine, outcome: Outcome, maybe_sent: bool
) -> None:
    queue_newsletter(engine, 3)
    clock = FakeClock(NOW)
    late = LateAnswer(outcome, maybe_sent=maybe_sent)
    a = services_for(settings, engine, clock, late)
    b_provider = FakeProvider()
    b = services_for(settings, engine, clock, b_provider)
    taken: dict[str, object] = {}

    def lease_runs_out_and_b_claims() -> None:
        clock.advance(seconds=settings.lease_seconds + 1)
        with engine.begin() as conn:
            stale = outbox_ops.expire_leases(conn, now=clock.now())
            ids = [r.id for r in outbox_ops.unknown_rows(conn, before=clock.now())]
            outbox_ops.requeue(
                conn, dict.fromkeys(ids, clock.now()), now=clock.now(), expect="unknown"
            )
        assert stale == 3
        taken["b"] = b.dispatcher._prepare(0, 100, DispatchReport())

    late.meanwhile = lease_runs_out_and_b_claims
    a.dispatcher.dispatch()

    prepared = taken["b"]
    b_token = prepared.token  # type: ignore[attr-defined]
    assert b_token
    # A's late answer changed nothing: B still holds every row, none went back to the queue.
    assert workers(engine) == [(OutboxStatus.SENDING, b_token)] * 3
    b.dispatcher._deliver(prepared, DispatchReport())  # type: ignore[arg-type]
    assert statuses(engine) == {"sent": 3}
    assert len(b_provider.sent) == 3
    # And nothing is left to send twice.
    clock.advance(hours=1)
    b.dispatcher.dispatch()
    assert len(b_provider.sent) == 3


def test_a_late_success_is_recorded_even_after_the_lease(
    settings: Settings, engine: Engine
) -> None:
    queue_newsletter(engine, 2)
    clock = FakeClock(NOW)
    late = LateAnswer(Outcome.SENT)
    a = services_for(settings, engine, clock, late)

    def lease_runs_out_and_rows_are_requeued() -> None:
        clock.advance(seconds=settings.lease_seconds + 1)
        with engine.begin() as conn:
            outbox_ops.expire_leases(conn, now=clock.now())
            ids = [r.id for r in outbox_ops.unknown_rows(conn, before=clock.now())]
            outbox_ops.requeue(
                conn,
                dict.fromkeys(ids, clock.now() + timedelta(minutes=5)),
                now=clock.now(),
                expect="unknown",
            )

    late.meanwhile = lease_runs_out_and_rows_are_requeued
    a.dispatcher.dispatch()
    # The request was accepted: the requeued rows are recorded sent, not sent again.
    assert statuses(engine) == {"sent": 2}
    clock.advance(hours=1)
    a.dispatcher.dispatch()
    assert len(late.sent) == 2
