"""The scheduler's jobs. Each is a plain function of :class:`Services` and ``now``.

``serve`` runs them on APScheduler intervals; ``nurture tick`` runs :func:`tick` once.
Every run is recorded in ``job_runs`` (what /healthz reports), with its duration in
the ``nurture_tick_duration_seconds`` histogram.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from nurture import metrics, planning
from nurture.dispatch import DispatchReport
from nurture.services import Services

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class TickReport:
    planned: planning.PlanReport
    dispatched: DispatchReport


def _recorded(services: Services, job: str, work: Callable[[], T]) -> T:
    started = datetime.now(UTC)
    try:
        result = work()
    except Exception as exc:
        services.health.record(job, started=started, finished=datetime.now(UTC), error=repr(exc))
        log.exception("job failed", extra={"job": job})
        raise
    finished = datetime.now(UTC)
    services.health.record(job, started=started, finished=finished)
    return result


def tick(services: Services, *, now: datetime | None = None) -> TickReport:
    """One planning + dispatch pass: what is due by ``now`` is planned and sent."""

    def work() -> TickReport:
        with metrics.tick_duration.time():
            at = now or services.dispatcher.clock()
            planned = planning.plan(services.engine, services.catalogue, services.settings, now=at)
            dispatched = services.dispatcher.dispatch()
        if dispatched.sent or dispatched.failed or planned.sequence_rows or planned.newsletter_rows:
            log.info(
                "tick",
                extra={
                    "planned": planned.sequence_rows + planned.newsletter_rows,
                    "sent": dispatched.sent,
                    "failed": dispatched.failed,
                    "retried": dispatched.retried,
                    "cancelled": dispatched.cancelled,
                },
            )
        return TickReport(planned, dispatched)

    return _recorded(services, "tick", work)


def housekeeping(services: Services) -> DispatchReport:
    """Leases, unknown outcomes, and the IP retention of consent records."""
    from nurture.store import consents

    def work() -> DispatchReport:
        report = services.dispatcher.housekeeping()
        with services.engine.begin() as conn:
            consents.purge_expired_ips(conn, services.settings, services.dispatcher.clock())
        return report

    return _recorded(services, "housekeeping", work)
