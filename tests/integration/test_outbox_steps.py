"""store.steps: the small integer naming a (campaign, step) in the outbox's unique key."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from nurture.delivery import planning
from nurture.settings import Settings
from nurture.store import steps
from nurture.store.schema import outbox, outbox_steps
from tests.helpers import T0, add_confirmed, confirmed, make_service


def test_each_step_has_one_id_and_two_steps_never_share_one(engine: Engine) -> None:
    with engine.begin() as conn:
        first = steps.ids_of(conn, [("what-i-do", "welcome"), ("newsletters", "welcome")])
        assert first[("what-i-do", "welcome")] != first[("newsletters", "welcome")]
    with engine.begin() as conn:  # read again in another transaction: the same ids
        assert steps.ids_of(conn, first) == first
        third = steps.id_of(conn, "what-i-do", "second")
        assert third not in first.values()
        names = conn.execute(select(outbox_steps.c.campaign, outbox_steps.c.step)).all()
    assert sorted(map(tuple, names)) == sorted([*first, ("what-i-do", "second")])


def test_rows_planned_carry_the_id_of_their_own_step(engine: Engine, settings: Settings) -> None:
    """Every writer of the outbox fills step_id from the row's own (campaign, step): a
    confirmation, a sequence's steps and a newsletter."""
    service = make_service(settings, engine)
    confirmed(service)
    letter = next(iter(service.catalogue.newsletters.values()))
    add_confirmed(engine, 2, at=letter.send_at - timedelta(days=1))
    planning.plan(engine, service.catalogue, settings, now=T0 + timedelta(days=30))
    planning.plan_newsletters(engine, service.catalogue, settings, now=letter.send_at)
    with engine.begin() as conn:
        names = (outbox.c.campaign, outbox.c.step, outbox_steps.c.campaign, outbox_steps.c.step)
        joined = outbox.join(outbox_steps, outbox_steps.c.id == outbox.c.step_id)
        found = conn.execute(select(outbox.c.kind, *names).select_from(joined)).all()
    assert {row.kind for row in found} == {"confirmation", "sequence", "newsletter"}
    assert all(tuple(row[1:3]) == tuple(row[3:]) for row in found)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_transactions_adding_one_step_at_once_get_its_one_id(engine: Engine) -> None:
    """The second waits for the first to commit, then reads the id the first gave."""
    got: dict[str, int] = {}
    with engine.begin() as conn:
        got["first"] = steps.id_of(conn, "newsletters", "spring")

        def second() -> None:
            with engine.begin() as other:
                got["second"] = steps.id_of(other, "newsletters", "spring")

        thread = threading.Thread(target=second)
        thread.start()
        assert waiting_on_a_lock(engine), "the second transaction must wait for the first"
        assert "second" not in got
    thread.join()
    assert got["second"] == got["first"]


def waiting_on_a_lock(engine: Engine) -> bool:
    """Whether a session inserting into outbox_steps waits on a lock (PostgreSQL's own
    view, polled: no timed wait, so the test holds under a moved clock too)."""
    for _ in range(400):
        with engine.connect() as watch:
            waiting = watch.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE 'INSERT INTO outbox_steps%%'"
            ).scalar_one()
        if waiting:
            return True
        time.sleep(0.05)
    return False
