"""The scenarios: each builds a :class:`~benchmarks.chaos.stage.Stage`, hurts the
service in one way, lets it drain and returns what the fake SendGrid saw.

Every scenario takes ``(n, kills, rng)``: the subscribers of the newsletter, how many
times to strike, and the random source for the moments of the strikes.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from datetime import timedelta

from benchmarks.chaos.stage import Outcome, Stage, running
from nurture.clock import utcnow

Scenario = Callable[[int, int, random.Random], Outcome]
#: Enough time for a fresh process to import, migrate, plan and start sending.
STARTUP_S = 1.5


def sqlite_sigkill(n: int, kills: int, rng: random.Random) -> Outcome:
    """SIGKILL ``nurture serve`` at random points of the newsletter on SQLite."""
    # Throttled, so that the strikes land all over planning and sending.
    with Stage("sqlite-sigkill", n, MAX_SEND_RATE=str(max(500, n // 5))) as stage:
        for _ in range(kills):
            proc = stage.serve()
            time.sleep(STARTUP_S * 0.5 + rng.uniform(0, 3.0))
            stage.kill(proc)
            if stage.counts().get("queued") == 0 and sum(stage.counts().values()) >= n:
                break  # nothing left to interrupt
        with running(stage, stage.serve()):
            return stage.drain()


def postgres_three_killed(n: int, kills: int, rng: random.Random) -> Outcome:
    """Three dispatchers on one PostgreSQL, SIGKILLed together at random points."""
    env = {"MAX_SEND_RATE": str(max(300, n // 10))}
    with (
        Stage("postgres-3-killed", n, backend="postgresql", **env) as stage,
        running(stage, stage.serve(scheduler=False)),
    ):
        for _ in range(kills):
            dispatchers = [stage.serve(web=False) for _ in range(3)]
            time.sleep(STARTUP_S + rng.uniform(0, 3.0))
            stage.kill(*dispatchers)
        with running(stage, *[stage.serve(web=False) for _ in range(3)]):
            return stage.drain()


#: Outage modes: the fake's scripted answer to the first requests (see Fault).
OUTAGES: dict[str, dict[str, object]] = {
    "outage-503": {"status": 503, "times": 6},
    "outage-429-reset": {"status": 429, "reset_in": 2.0, "times": 4},
    "outage-timeout": {"delay": 5.0, "times": 2},  # beyond SENDGRID_TIMEOUT; accepted
    # The first requests of both dispatch workers; the later ones' events are what
    # lets housekeeping resend the dropped ones after UNKNOWN_EVENT_GRACE_MINUTES.
    "outage-drop-before": {"drop": True, "times": 2},
    "outage-drop-after": {"drop": True, "accept": True, "times": 2},
}


def outage(name: str) -> Scenario:
    """A provider outage of the given mode, met by one ``nurture serve`` on SQLite."""

    def scenario(n: int, kills: int, rng: random.Random) -> Outcome:
        with Stage(name, n) as stage:
            stage.fake.fail_next(**OUTAGES[name])  # type: ignore[arg-type]
            with running(stage, stage.serve()):
                return stage.drain()

    scenario.__doc__ = f"{name}: {OUTAGES[name]}"
    return scenario


def stale_claim(n: int, kills: int, rng: random.Random) -> Outcome:
    """Duplicate 1: a stale claim's late answer after another dispatcher re-claimed.

    Dispatcher A sends; its answer (a 503) is late, and A is stopped (SIGSTOP) past its
    lease. Housekeeping makes the rows unknown, then requeues them when no event came;
    dispatcher B claims and sends them, and while B's request is in flight A wakes and
    reads its 503. Unfenced, that 503 put B's rows back in the queue to go twice.
    """
    with (
        Stage(
            "dup1-stale-claim",
            n,
            backend="postgresql",
            DISPATCH_BATCH_SIZE="1000",
            DISPATCH_WORKERS="1",
        ) as stage,
        running(stage, stage.serve(scheduler=False)),
    ):
        stage.fake.fail_next(503, delay=1.0)  # A's request: refused, late
        stage.fake.fail_next(delay=2.5)  # B's request: accepted, slowly
        # Planning every 5 s, not every second: A is then stopped outside any
        # transaction (a process frozen inside one blocks every other writer).
        a = stage.serve(web=False, TICK_SECONDS="5")
        if not stage.arrivals.wait_for(1, timeout=60):
            stage.outcome.notes.append("A never sent")
            return stage.drain(timeout=1)
        a.send_signal(signal.SIGSTOP)
        b = stage.serve(web=False)
        # Lease out -> unknown -> no event within the window -> requeued -> B claims.
        while not stage.arrivals.wait_for(2, timeout=0.5):
            stage.housekeep()
            if time.monotonic() - stage.started > 240:
                break
        a.send_signal(signal.SIGCONT)  # B's request in flight: A reads its late 503
        stage.outcome.notes.append(f"A woke {time.monotonic() - stage.started:.0f} s in")
        with running(stage, a, b):
            return stage.drain()


def tick_in_the_past(n: int, kills: int, rng: random.Random) -> Outcome:
    """Duplicate 2: ``nurture tick --at`` two days back, answers lost, webhook down.

    The tick must be refused (``--at`` only goes with ``--dry-run``). Then, as the
    operator would, plain ticks send; the answers are lost after acceptance while the
    webhook is down, and the events arrive once it is back.
    """
    with Stage("dup2-tick-at-past", n) as stage:
        stage.fake.fail_next(drop=True, accept=True, times=100)
        stage.poster.paused.set()
        past = (utcnow() - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = stage.tick("--at", past)
        stage.outcome.notes.append(f"tick --at past: exit {status}")
        if status == 0:
            stage.outcome.notes.append("tick --at in the past was NOT refused")
        stage.tick()
        stage.wait_until(lambda: not stage.in_flight("sending"), timeout=30)
        stage.tick()  # a second pass of housekeeping, webhook still down
        stage.poster.paused.clear()
        with running(stage, stage.serve()):
            return stage.drain()


def lease_below_timeout(n: int, kills: int, rng: random.Random) -> Outcome:
    """Duplicate 3: ``LEASE_SECONDS`` below the provider timeout must stop start-up.

    Then the newsletter goes out with consistent settings against slow answers (each
    just under the timeout), which must neither duplicate nor lose anything.
    """
    with Stage("dup3-lease-below-timeout", n) as stage:
        bad = stage.spawn(
            "serve", "--port", str(stage.port), LEASE_SECONDS="10", SENDGRID_TIMEOUT="30"
        )
        try:
            status: int | None = bad.wait(timeout=20)
        except Exception:
            status = None
            stage.kill(bad)
        refused = status not in (None, 0)
        stage.outcome.notes.append(
            f"refused at start-up (exit {status})" if refused else "NOT refused at start-up"
        )
        stage.fake.fail_next(delay=2.5, times=4)
        with running(stage, stage.serve()):
            return stage.drain()


def sigterm_mid_batch(n: int, kills: int, rng: random.Random) -> Outcome:
    """SIGTERM while a batch is in flight: it finishes, the process exits 0."""
    with Stage("sigterm-mid-batch", n) as stage:
        stage.fake.fail_next(delay=0.5, times=10_000)  # slow answers: batches in flight
        statuses = []
        for _ in range(kills):
            proc = stage.serve()
            stage.wait_until(lambda: stage.in_flight("sending"), timeout=30, step=0.02)
            time.sleep(rng.uniform(0, 0.3))
            statuses += stage.kill(proc, sig=signal.SIGTERM)
            if stage.in_flight("sending"):
                stage.outcome.notes.append("rows left sending after SIGTERM")
        if any(statuses):
            stage.outcome.notes.append(f"exit statuses {statuses}")
        with running(stage, stage.serve()):
            return stage.drain()


SCENARIOS: dict[str, Scenario] = {
    "sqlite-sigkill": sqlite_sigkill,
    "postgres-3-killed": postgres_three_killed,
    **{name: outage(name) for name in OUTAGES},
    "dup1-stale-claim": stale_claim,
    "dup2-tick-at-past": tick_in_the_past,
    "dup3-lease-below-timeout": lease_below_timeout,
    "sigterm-mid-batch": sigterm_mid_batch,
}
#: Scenarios that run on all N subscribers; the others take the smaller --small.
FULL_SIZE = ("sqlite-sigkill", "postgres-3-killed")
