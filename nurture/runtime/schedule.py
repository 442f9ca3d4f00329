"""The job schedule of ``nurture serve``: which job runs how often, in one table.

:func:`nurture.runtime.server.make_scheduler` builds the APScheduler jobs from
:func:`schedule`, and ``scheduler/README.md`` shows the same table to the operator (a
unit test checks that it matches). ``plan`` and ``dispatch`` are separate jobs, run side
by side by the scheduler's thread pool, so a long newsletter pass never holds up
planning, nor the health check that watches it. For cron-style running instead,
``nurture tick`` runs :func:`~nurture.runtime.jobs.tick` (plan, then dispatch) once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from nurture.runtime import jobs
from nurture.runtime.services import Services
from nurture.settings import Settings

#: How often housekeeping runs: expired leases, unknown outcomes, consent IP retention.
HOUSEKEEPING_EVERY = timedelta(minutes=5)

#: Every job: ``coalesce`` and ``max_instances=1`` mean a slow pass is never run twice
#: at once, and passes missed while one ran fold into a single catch-up run.
JOB_DEFAULTS: dict[str, Any] = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 60}


@dataclass(frozen=True)
class ScheduledJob:
    """One job of the schedule: what runs, how often, and what it does (for the README)."""

    name: str
    run: Callable[[Services], object]
    every: timedelta
    #: The first run comes this long after start-up (staggered, so they do not collide).
    first_after: timedelta
    does: str
    #: The setting that sets ``every``, when one does (``None``: fixed here).
    setting: str | None = None


def schedule(settings: Settings) -> tuple[ScheduledJob, ...]:
    """The jobs ``nurture serve`` runs, with the intervals these settings give them."""
    tick = timedelta(seconds=settings.tick_seconds)
    return (
        ScheduledJob(
            "plan",
            jobs.plan,
            tick,
            timedelta(0),
            "plan due sequence steps and open newsletters into the outbox",
            setting="TICK_SECONDS",
        ),
        ScheduledJob(
            "dispatch",
            jobs.dispatch,
            tick,
            timedelta(seconds=1),
            "send what is due, until nothing due is left (a pass may be long: a big newsletter)",
            setting="TICK_SECONDS",
        ),
        ScheduledJob(
            "housekeeping",
            jobs.housekeeping,
            HOUSEKEEPING_EVERY,
            timedelta(seconds=5),
            "expired leases, unknown outcomes reconciled, consent IPs past "
            "`IP_RETENTION_DAYS` dropped, unsubscribed people's data erased after "
            "`RETENTION_UNSUBSCRIBED_DAYS`, webhook events after 30 days; links of "
            "confirmed subscribers signed ahead of time (up to 50,000 a run)",
        ),
    )
