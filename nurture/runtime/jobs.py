"""The scheduler's jobs. Each is a plain function of :class:`Services`.

``serve`` runs ``plan``, ``dispatch`` and ``housekeeping`` on their own intervals, set
in :mod:`nurture.runtime.schedule`, so a long newsletter pass never holds up planning
(nor the health check that watches it); ``nurture tick`` runs :func:`tick` (plan, then
dispatch) once. Every run is recorded in ``job_runs`` (what /healthz reports); each
dispatch pass is also timed in the ``nurture_tick_duration_seconds`` histogram.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from nurture import metrics
from nurture.delivery import planning, reconciliation
from nurture.delivery.dispatch import DispatchReport
from nurture.runtime.services import Services
from nurture.store import consents

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class TickReport:
    planned: planning.PlanReport
    dispatched: DispatchReport


def _recorded(services: Services, job: str, work: Callable[[], T]) -> T:
    started = services.clock()
    services.health.started(job, at=started)
    try:
        result = work()
    except Exception as exc:
        services.health.record(job, started=started, finished=services.clock(), error=repr(exc))
        log.exception("job failed", extra={"job": job})
        raise
    services.health.record(job, started=started, finished=services.clock())
    return result


def plan(services: Services, *, now: datetime | None = None) -> planning.PlanReport:
    """Queues what is due by ``now``: the next step of each sequence, open newsletters."""

    def work() -> planning.PlanReport:
        at = now or services.clock()
        report = planning.plan(services.engine, services.catalogue, services.settings, now=at)
        if report.sequence_rows or report.newsletter_rows:
            log.info(
                "planned",
                extra={"sequence": report.sequence_rows, "newsletter": report.newsletter_rows},
            )
        return report

    return _recorded(services, "plan", work)


def dispatch(services: Services) -> DispatchReport:
    """Sends everything due, until the queue holds nothing due (or SIGTERM)."""

    def work() -> DispatchReport:
        with metrics.tick_duration.time():
            report = services.dispatcher.dispatch()
        if report.sent or report.failed or report.unknown:
            log.info(
                "dispatched",
                extra={
                    "sent": report.sent,
                    "failed": report.failed,
                    "retried": report.retried,
                    "cancelled": report.cancelled,
                    "deferred": report.deferred,
                    "unknown": report.unknown,
                },
            )
        return report

    return _recorded(services, "dispatch", work)


def tick(services: Services, *, now: datetime | None = None) -> TickReport:
    """One full pass: plan as of ``now``, then send what is due."""
    return TickReport(plan(services, now=now), dispatch(services))


def housekeeping(services: Services) -> reconciliation.ReconcileReport:
    """Expired leases, unknown outcomes, and the IP retention of consent records."""

    def work() -> reconciliation.ReconcileReport:
        now = services.clock()
        report = reconciliation.reconcile(
            services.engine,
            services.settings,
            services.catalogue,
            services.provider,
            now=now,
        )
        with services.engine.begin() as conn:
            consents.purge_expired_ips(conn, services.settings, now)
        return report

    return _recorded(services, "housekeeping", work)
