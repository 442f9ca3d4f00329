"""Sequence planning takes its due enrolments (store.enrolments.take_for_planning): each
once, as it was, and cleared, so that two planners never plan the same step."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import Engine, insert, select

from nurture.campaigns import load_catalogue
from nurture.delivery import planning
from nurture.settings import Settings
from nurture.store import enrolments as enrolment_ops
from nurture.store.schema import enrolments, subscribers
from tests.helpers import NOW, queue_newsletter


def enrol_due(engine: Engine, count: int) -> dict[int, object]:
    """``count`` confirmed subscribers, each enrolled with step 1 due at its own time;
    their due times by enrolment id."""
    queue_newsletter(engine, count)
    with engine.begin() as conn:
        ids = conn.execute(select(subscribers.c.id).order_by(subscribers.c.id)).scalars().all()
        for i, subscriber_id in enumerate(ids):
            conn.execute(
                insert(enrolments).values(
                    subscriber_id=subscriber_id, campaign="beginning-therapy", status="active",
                    next_step=0, next_due_at=NOW - timedelta(minutes=i), enrolled_at=NOW,
                    updated_at=NOW,
                )
            )  # fmt: skip
        rows = conn.execute(select(enrolments.c.id, enrolments.c.next_due_at)).all()
    return {row.id: row.next_due_at for row in rows}


def test_taken_enrolments_come_back_as_they_were_and_are_cleared(engine: Engine) -> None:
    due = enrol_due(engine, 3)
    with engine.begin() as conn:
        taken = enrolment_ops.take_for_planning(conn, now=NOW, limit=10)
        assert {row.id: row.next_due_at for row in taken} == due  # before clearing
    with engine.begin() as conn:
        left = conn.execute(select(enrolments.c.next_due_at, enrolments.c.updated_at)).all()
        assert left == [(None, NOW)] * 3
        assert enrolment_ops.take_for_planning(conn, now=NOW, limit=10) == []


def test_any_due_sees_what_is_left_to_take(engine: Engine) -> None:
    enrol_due(engine, 3)
    with engine.begin() as conn:
        assert enrolment_ops.any_due(conn, now=NOW)
        assert not enrolment_ops.any_due(conn, now=NOW - timedelta(minutes=3))  # none yet
        enrolment_ops.take_for_planning(conn, now=NOW, limit=2)
        assert enrolment_ops.any_due(conn, now=NOW)  # the third
        enrolment_ops.take_for_planning(conn, now=NOW, limit=2)
        assert not enrolment_ops.any_due(conn, now=NOW)  # its own taken rows are not due


@pytest.mark.parametrize("batch", [2, 5, 7])
def test_a_pass_plans_every_due_enrolment_whatever_the_batch(
    engine: Engine, settings: Settings, batch: int
) -> None:
    """Full batches go on to the next; a full batch that was the last ends the pass
    (batch 5 for 5 due), as a short one does."""
    enrol_due(engine, 5)
    report = planning.plan_sequences(
        engine, load_catalogue(settings), settings, now=NOW, batch=batch
    )
    assert report.sequence_rows == 5
    with engine.connect() as conn:
        assert conn.execute(select(enrolments.c.next_due_at)).scalars().all() == [None] * 5
        assert not enrolment_ops.any_due(conn, now=NOW)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_planners_split_the_due_enrolments(engine: Engine) -> None:
    """SKIP LOCKED: the second planner takes what the first left, never the same row,
    even while the first still holds its rows uncommitted."""
    due = enrol_due(engine, 6)
    first_took = threading.Event()
    release = threading.Event()
    taken: dict[str, list[int]] = {}

    def planner(name: str, hold: bool) -> None:
        with engine.begin() as conn:
            taken[name] = [r.id for r in enrolment_ops.take_for_planning(conn, now=NOW, limit=4)]
            if hold:
                first_took.set()
                release.wait(10)

    first = threading.Thread(target=planner, args=("first", True))
    first.start()
    assert first_took.wait(10)
    second = threading.Thread(target=planner, args=("second", False))
    second.start()
    second.join(5)  # while the first holds its four rows: no waiting on them
    waited = second.is_alive()
    release.set()
    first.join()
    second.join()
    assert not waited, "the second planner waited for the first one's rows"
    assert len(taken["first"]) == 4 and len(taken["second"]) == 2
    assert sorted(taken["first"] + taken["second"]) == sorted(due)
