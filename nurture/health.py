"""What /healthz reports: is the database reachable, and is the scheduler ticking?

Every scheduler job records its runs in the ``job_runs`` table, so a web-only process
(``serve --no-scheduler``) reports the health of schedulers running elsewhere too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, text

from nurture.store import database
from nurture.store.schema import job_runs


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Health:
    """Answers health questions; ``started_at`` gives a fresh service a grace period."""

    engine: Engine
    tick_seconds: int
    started_at: datetime

    def record(
        self,
        job: str,
        *,
        started: datetime,
        finished: datetime,
        error: str | None = None,
    ) -> None:
        """Writes one job run to ``job_runs`` (upsert by job name)."""
        values: dict[str, Any] = {
            "last_started_at": started,
            "last_finished_at": finished,
            "last_error": error[:500] if error else None,
            "duration_seconds": f"{(finished - started).total_seconds():.3f}",
        }
        if error is None:
            values["last_ok_at"] = finished
        with self.engine.begin() as conn:
            updated = conn.execute(job_runs.update().where(job_runs.c.job == job).values(values))
            if updated.rowcount == 0:
                conn.execute(job_runs.insert().values(job=job, **values))

    def status(self, now: datetime | None = None) -> tuple[bool, dict[str, Any]]:
        """(healthy, detail). Unhealthy when the database is down or ticks have stopped."""
        now = now or utcnow()
        detail: dict[str, Any] = {"database": "ok"}
        try:
            with self.engine.connect() as conn:
                conn.execute(text("select 1"))
                row = conn.execute(
                    select(job_runs.c.last_ok_at, job_runs.c.last_error).where(
                        job_runs.c.job == "tick"
                    )
                ).first()
        except Exception as exc:  # any database failure makes the service unhealthy
            return False, {"database": f"unreachable ({type(exc).__name__})"}
        last_tick = row.last_ok_at if row else None
        detail["last_tick"] = last_tick.isoformat() if last_tick else None
        detail["database_backend"] = "sqlite" if database.is_sqlite(self.engine) else "postgresql"
        stale_after = timedelta(seconds=max(5 * self.tick_seconds, 120))
        if last_tick is None:
            healthy = now - self.started_at < stale_after
            detail["scheduler"] = "starting" if healthy else "no tick recorded"
        else:
            healthy = now - last_tick < stale_after
            detail["scheduler"] = "ok" if healthy else "stale"
        if row and row.last_error:
            detail["last_error"] = row.last_error
        return healthy, detail
