"""The scheduler's jobs. Each is a plain function of :class:`Services`.

``serve`` runs ``plan``, ``dispatch`` and ``housekeeping`` on their own intervals, set
in :mod:`nurture.runtime.schedule`, so a long newsletter pass never holds up planning
(nor the health check that watches it); ``nurture tick`` runs :func:`tick` (plan, then
dispatch) once. Every run is recorded in ``job_runs`` (what /healthz reports); each
dispatch pass is also timed in the ``nurture_tick_duration_seconds`` histogram.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from nurture import metrics
from nurture.delivery import planning, presigning, reconciliation
from nurture.delivery.dispatch import DispatchReport
from nurture.runtime import reload
from nurture.runtime.services import Services
from nurture.store import consents, folding, rate_limits
from nurture.subscriptions import gdpr

log = logging.getLogger(__name__)
T = TypeVar("T")
#: Outbox rows folded per transaction (short transactions: the dispatcher keeps going).
FOLD_BATCH = 5000


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
    reload.refresh(services)  # edited campaign files are used from this pass on

    def work() -> planning.PlanReport:
        at = now or services.clock()
        started = time.perf_counter()
        report = planning.plan(services.engine, services.catalogue, services.settings, now=at)
        seconds = time.perf_counter() - started
        if report.sequence_rows or report.newsletter_rows or report.completed:
            log.info(
                f"planned {report.sequence_rows} sequence and {report.newsletter_rows} "
                f"newsletter email(s), {report.completed} sequence(s) completed, "
                f"in {seconds:.3f} s",
                extra={
                    "sequence": report.sequence_rows,
                    "newsletter": report.newsletter_rows,
                    "completed": report.completed,
                    "duration_seconds": round(seconds, 3),
                },
            )
        return report

    return _recorded(services, "plan", work)


def dispatch(services: Services) -> DispatchReport:
    """Sends everything due, until the queue holds nothing due (or SIGTERM)."""
    reload.refresh(services)  # edited campaign files are used from this pass on

    def work() -> DispatchReport:
        started = time.perf_counter()
        with metrics.tick_duration.time():
            report = services.dispatcher.dispatch()
        seconds = time.perf_counter() - started
        counts = {
            "sent": report.sent,
            "failed": report.failed,
            "retried": report.retried,
            "cancelled": report.cancelled,
            "deferred": report.deferred,
            "unknown": report.unknown,
            "batches": report.batches,
        }
        if any(counts.values()):
            rate = report.sent / seconds if seconds > 0 else 0.0
            log.info(
                "dispatched "
                + ", ".join(f"{name} {count}" for name, count in counts.items())
                + f" in {seconds:.3f} s ({rate:.1f}/s)",
                extra={**counts, "duration_seconds": round(seconds, 3)},
            )
        return report

    return _recorded(services, "dispatch", work)


def tick(services: Services, *, now: datetime | None = None) -> TickReport:
    """One full pass: plan as of ``now``, then send what is due."""
    return TickReport(plan(services, now=now), dispatch(services))


def housekeeping(services: Services) -> reconciliation.ReconcileReport:
    """Expired leases, unknown outcomes, retention (consent IPs, unsubscribed people's
    data after ``RETENTION_UNSUBSCRIBED_DAYS``, old webhook events), and links signed
    ahead of time for the next newsletter (:mod:`nurture.delivery.presigning`)."""

    def work() -> reconciliation.ReconcileReport:
        now = services.clock()
        report = reconciliation.reconcile(
            services.engine,
            services.settings,
            services.catalogue,
            services.provider,
            now=now,
        )
        window = timedelta(seconds=services.settings.subscribe_rate_window_seconds)
        with services.engine.begin() as conn:
            consents.purge_expired_ips(conn, services.settings, now)
            rate_limits.prune(conn, now - window)
        gdpr.apply_retention(services.engine, services.settings, now)
        fold_old_mail(services, now)
        presigning.presign_links(services.engine, services.tokens, now=now)
        return report

    return _recorded(services, "housekeeping", work)


def fold_old_mail(services: Services, now: datetime) -> int:
    """Outbox rows older than ``RETENTION_SENT_DAYS``: folded into per-step daily counts
    (which the statistics keep showing), then deleted, in short transactions."""
    before = now - timedelta(days=services.settings.retention_sent_days)
    folded = 0
    while True:
        with services.engine.begin() as conn:
            done = folding.fold_old_outbox(conn, before=before, limit=FOLD_BATCH)
        folded += done
        if done < FOLD_BATCH:
            break
    if folded:
        log.info(f"retention: {folded} old outbox row(s) folded", extra={"folded": folded})
    return folded
