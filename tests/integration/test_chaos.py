"""The chaos harness, reduced: every scenario of ``make chaos`` on a small newsletter.

Each runs the service's real processes (``nurture serve``, ``nurture tick``) against
the fake SendGrid and must end with no email accepted twice and none missing. The
scenarios run side by side: most of the time goes into waits the service imposes
(leases, UNKNOWN_EVENT_GRACE_MINUTES and UNKNOWN_RECONCILE_MINUTES at their minimums),
not into work. ``make chaos`` runs the full sizes.
"""

from __future__ import annotations

import time

import pytest

from benchmarks.chaos.__main__ import run, table
from benchmarks.chaos.scenarios import SCENARIOS

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(420)]


def test_no_duplicate_and_none_lost_in_any_scenario(postgres_schema_url: str) -> None:
    # The fixture skips (or fails, under CI=true) without PostgreSQL; the scenarios
    # make schemas of their own.
    started = time.monotonic()
    outcomes = run(list(SCENARIOS), n=2000, small=1000, kills=3, parallel=len(SCENARIOS), seed=8)
    report = table(outcomes)
    print(report, f"\n{time.monotonic() - started:.0f} s")
    for outcome in outcomes:
        assert outcome.drain_s is not None, report
        assert (outcome.duplicates, outcome.lost) == (0, 0), report
    notes = {o.name: " ".join(o.notes) for o in outcomes}
    assert "exit 2" in notes["dup2-tick-at-past"], report
    assert "refused at start-up" in notes["dup3-lease-below-timeout"], report
