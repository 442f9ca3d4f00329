"""The outbox's bookkeeping alone, against the floor's: where the database's share goes.

No rendering, no tokens, no HTTP: N confirmed subscribers, a newsletter planned for
them, then batches of 1,000 taken, marked ``sending`` and marked ``sent``, each in its
own committed transaction, exactly as dispatch does them. Beside it, the floor's own
bookkeeping (:mod:`benchmarks.floor`: an INSERT per email and two marks per batch) on
the same backend. Their ratio says how much of a newsletter's distance from the floor
lies in the schema rather than in Python.

    python -m benchmarks.bookkeeping [--n 100000] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from benchmarks import floor
from benchmarks.newsletter import database_for, floor_target, seeded
from nurture.delivery import planning
from nurture.store import outbox as outbox_ops

BATCH = 1000


def ours(backend: str, n: int) -> dict[str, float]:
    """Seconds spent planning, taking, marking sending and marking sent; CPU seconds."""
    with seeded(backend, n, "http://127.0.0.1:9") as ready:
        engine, now, lease = ready.engine, ready.now, timedelta(minutes=5)
        cpu = os.times()
        started = time.perf_counter()
        planning.plan_newsletters(engine, ready.catalogue, ready.settings, now=now)
        times = {"plan": time.perf_counter() - started, "take": 0.0, "sending": 0.0, "sent": 0.0}
        while True:
            a = time.perf_counter()
            with engine.begin() as conn:
                rows = outbox_ops.take(conn, now=now, limit=BATCH)
                b = time.perf_counter()
                if not rows:
                    break
                ids = [row.id for row in rows]
                token = f"bench:1:{ids[0]}"  # one claim per batch, as dispatch makes them
                outbox_ops.start_sending(conn, ids, token=token, now=now, lease=lease)
            c = time.perf_counter()
            with engine.begin() as conn:
                outbox_ops.mark_group_sent(conn, ids, message_id="bench-message", now=now)
                outbox_ops.release(conn, token)
            d = time.perf_counter()
            times["take"] += b - a
            times["sending"] += c - b
            times["sent"] += d - c
        times["total"] = time.perf_counter() - started
        times["cpu"] = sum(os.times()[:2]) - sum(cpu[:2])
        return times


def floors(backend: str, n: int) -> float:
    """The floor's bookkeeping alone: an INSERT per email, then two committed marks."""
    workdir = Path(tempfile.mkdtemp(prefix="nurture-bookkeeping-floor-"))
    try:
        with database_for(backend, workdir) as url:
            book = floor.bookkeeper(backend, floor_target(backend, workdir, url))
            conn = book.connect()
            started = time.perf_counter()
            for first in range(0, n, BATCH):
                count = min(BATCH, n - first)
                book.insert(conn, first, count)
                book.mark(conn, first, count, "sending", None)
                book.mark(conn, first, count, "sent", "bench-message")
            seconds = time.perf_counter() - started
            conn.close()
            return seconds
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args(argv)
    for backend in args.backends.split(","):
        least = floors(backend, args.n)
        t = ours(backend, args.n)
        print(
            f"{backend:<10} bookkeeping of {args.n:,}: {t['total']:6.2f} s (plan {t['plan']:.2f},"
            f" take {t['take']:.2f}, sending {t['sending']:.2f}, sent {t['sent']:.2f};"
            f" CPU {t['cpu']:.2f} s); the floor's {least:.2f} s -> {t['total'] / least:.2f}x",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
