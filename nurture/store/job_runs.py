"""Named operations on ``job_runs``: one row per scheduler job, its latest run.

Every process that runs jobs writes here, so a web-only process (``serve
--no-scheduler``) reads the health of schedulers running elsewhere.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from nurture.store.schema import job_runs
from nurture.store.upsert import insert_ignore


def upsert(conn: Connection, job: str, values: dict[str, Any]) -> None:
    """Sets columns of ``job``'s row, creating the row first if it is missing.

    Insert-if-missing first, then update: two processes starting together on
    PostgreSQL would otherwise both insert and one would fail.
    """
    conn.execute(insert_ignore(conn, job_runs).values(job=job))
    conn.execute(job_runs.update().where(job_runs.c.job == job).values(values))


def latest(conn: Connection) -> dict[str, Any]:
    """``{job: row}`` with each job's ``last_ok_at``, ``last_started_at``,
    ``last_finished_at`` and ``last_error``."""
    query = select(
        job_runs.c.job,
        job_runs.c.last_ok_at,
        job_runs.c.last_started_at,
        job_runs.c.last_finished_at,
        job_runs.c.last_error,
    )
    return {r.job: r for r in conn.execute(query)}
