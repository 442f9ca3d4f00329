"""What a scheduler tick costs as the list grows: 100,000 active enrolments.

- idle: nothing due; one planning pass and one dispatch pass, as ``nurture tick`` runs
  them (median of several);
- due: 1,000 of the enrolments due; the planning pass that queues their next step
  (median of several rounds, each with another 1,000 due).

    python -m benchmarks.ticks [--enrolments 100000] [--due 1000] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, text

from benchmarks.newsletter import bench_settings, database_for, seed
from nurture.campaigns import load_catalogue
from nurture.delivery import planning
from nurture.runtime.services import build_services
from nurture.store import database

CAMPAIGN = "what-i-actually-do"
ROUNDS = 5


def enrol_everyone(engine: Engine, campaign: str) -> None:
    """Every subscriber enrolled and waiting for step 1, due in a year (nothing due)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO enrolments (subscriber_id, campaign, status, next_step, next_due_at,"
                " enrolled_at, last_sent_at, updated_at) SELECT id, :c, 'active', 1, :later,"
                " :t, :t, :t FROM subscribers"
            ),
            {"c": campaign, "later": "2027-12-01 00:00:00", "t": "2026-11-01 00:00:00"},
        )
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE"))


def make_due(engine: Engine, first: int, count: int) -> None:
    """``count`` enrolments from subscriber ``first`` on due a day ago."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE enrolments SET next_due_at = :due"
                " WHERE subscriber_id >= :first AND subscriber_id < :end"
            ),
            {"due": "2026-11-30 08:00:00", "first": first, "end": first + count},
        )


def run(backend: str, enrolments: int, due: int) -> tuple[float, float]:
    """(idle plan + dispatch ms, planning ms with ``due`` due), medians."""
    workdir = Path(tempfile.mkdtemp(prefix="nurture-bench-ticks-"))
    try:
        with database_for(backend, workdir) as url:
            settings = bench_settings(workdir, url, "http://127.0.0.1:9")
            database.upgrade(url)
            engine = database.make_engine(url)
            seed(engine, enrolments)
            enrol_everyone(engine, CAMPAIGN)
            catalogue = load_catalogue(settings)
            # After the newsletter's window: only the sequences are in play.
            newsletter = next(iter(catalogue.newsletters.values()))
            now = max(newsletter.not_after or newsletter.send_at, newsletter.send_at) + timedelta(
                days=30
            )
            now = now.replace(hour=10, minute=0)
            dispatcher = build_services(settings, clock=lambda: now, engine=engine).dispatcher
            planning.plan(engine, catalogue, settings, now=now)  # warm: caches, statistics
            idle = []
            for _ in range(ROUNDS * 2):
                started = time.perf_counter()
                planning.plan(engine, catalogue, settings, now=now)
                dispatcher.dispatch()
                idle.append(time.perf_counter() - started)
            planned = []
            for round_ in range(ROUNDS):
                make_due(engine, 1 + round_ * due, due)
                started = time.perf_counter()
                report = planning.plan(engine, catalogue, settings, now=now)
                planned.append(time.perf_counter() - started)
                assert report.sequence_rows == due, report
            engine.dispose()
            return statistics.median(idle) * 1000, statistics.median(planned) * 1000
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--enrolments", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args(argv)
    for backend in args.backends.split(","):
        idle, planned = run(backend, args.enrolments, args.due)
        print(
            f"{backend:<10} {args.enrolments:,} active enrolments: idle plan + dispatch "
            f"{idle:6.1f} ms; {args.due:,} due: planning {planned:6.1f} ms",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
