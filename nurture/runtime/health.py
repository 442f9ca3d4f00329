"""What /healthz reports: is the database reachable, and is the scheduler ticking?

Every scheduler job records its runs in the ``job_runs`` table, so a web-only process
(``serve --no-scheduler``) reports the health of schedulers running elsewhere too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from nurture.clock import utcnow
from nurture.store import database
from nurture.store import job_runs as job_run_ops


@dataclass
class Health:
    """Answers health questions; ``started_at`` gives a fresh service a grace period."""

    engine: Engine
    tick_seconds: int
    started_at: datetime

    def started(self, job: str, *, at: datetime) -> None:
        """Notes that ``job`` started (a long dispatch pass shows as running)."""
        self._upsert(job, {"last_started_at": at})

    def record(
        self,
        job: str,
        *,
        started: datetime,
        finished: datetime,
        error: str | None = None,
    ) -> None:
        """Writes one finished run of ``job`` to ``job_runs``."""
        values: dict[str, Any] = {
            "last_started_at": started,
            "last_finished_at": finished,
            "last_error": error[:500] if error else None,
            "duration_seconds": f"{(finished - started).total_seconds():.3f}",
        }
        if error is None:
            values["last_ok_at"] = finished
        self._upsert(job, values)

    def _upsert(self, job: str, values: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            job_run_ops.upsert(conn, job, values)

    def status(self, now: datetime | None = None) -> tuple[bool, dict[str, Any]]:
        """(healthy, detail). Unhealthy when the database is down or planning has stopped.

        Planning runs every TICK_SECONDS beside dispatch, whose passes may be long (a
        large newsletter), so "is the scheduler alive" is read from the plan job.
        """
        now = now or utcnow()
        detail: dict[str, Any] = {"database": "ok"}
        try:
            with database.reading(self.engine) as conn:
                database.ping(conn)
                rows = job_run_ops.latest(conn)
        except Exception as exc:  # any database failure makes the service unhealthy
            return False, {"database": f"unreachable ({type(exc).__name__})"}
        plan, send = rows.get("plan"), rows.get("dispatch")
        last_tick = plan.last_ok_at if plan else None
        detail["last_tick"] = last_tick.isoformat() if last_tick else None
        if send is not None:
            detail["last_dispatch"] = send.last_ok_at.isoformat() if send.last_ok_at else None
            running = send.last_started_at and (
                send.last_finished_at is None or send.last_started_at > send.last_finished_at
            )
            if running:
                detail["dispatching_since"] = send.last_started_at.isoformat()
        detail["database_backend"] = "sqlite" if database.is_sqlite(self.engine) else "postgresql"
        stale_after = timedelta(seconds=max(5 * self.tick_seconds, 120))
        if last_tick is None:
            healthy = now - self.started_at < stale_after
            detail["scheduler"] = "starting" if healthy else "no tick recorded"
        else:
            healthy = now - last_tick < stale_after
            detail["scheduler"] = "ok" if healthy else "stale"
        errors = [r.last_error for r in (plan, send) if r is not None and r.last_error]
        if errors:
            detail["last_error"] = errors[0]
        return healthy, detail
