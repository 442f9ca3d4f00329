"""One scenario's world: a database, a fake SendGrid posting signed events, the service.

A :class:`Stage` seeds N confirmed subscribers (with :func:`benchmarks.newsletter.seed`)
and a copy of the campaigns holding one newsletter due now, starts the fake SendGrid
in this process (it records every accepted personalization, and an
:class:`~nurture.testing.sendgrid.events.EventPoster` posts signed ``processed`` events
for them to the service's webhook) and runs the service's real processes
(``nurture serve``, ``nurture tick``) against them with ``NURTURE_*`` variables. It
then waits for the queue to drain and counts, from the fake's records, what was
accepted twice and what never was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from benchmarks import newsletter
from nurture.clock import utcnow
from nurture.store import database
from nurture.store.schema import outbox
from nurture.testing.sendgrid import FakeSendGrid
from nurture.testing.sendgrid.events import EventPoster
from nurture.testing.sendgrid.faults import Fault, FaultScript

ROOT = newsletter.ROOT
NURTURE = [sys.executable, "-m", "nurture"]
API_KEY = "SG.chaos"
_MIGRATING = threading.Lock()
#: The least time between two housekeeping ticks the harness runs (each costs a process).
TICK_EVERY_S = 5.0
IN_FLIGHT = ("queued", "sending", "unknown")
#: Settings every scenario runs with, unless it overrides them. The lease must outlast
#: the provider timeout; retries start after a second so that outages drain quickly.
BASE_ENV = {
    "ENV": "test",
    "TIMEZONE": "Europe/London",
    "DELIVERY": "sendgrid",
    "SENDGRID_API_KEY": API_KEY,
    "SENDGRID_TIMEOUT": "3",
    "LEASE_SECONDS": "10",
    "TICK_SECONDS": "1",
    "RETRY_BASE_SECONDS": "1",
    "UNKNOWN_RECONCILE_MINUTES": "2",
    "UNKNOWN_EVENT_GRACE_MINUTES": "1",
    "DISPATCH_BATCH_SIZE": "250",
    "SEND_WINDOW": "00:00-24:00",
    "SECRET_KEYS": "chaos-secret-key-of-at-least-32-characters",
    "SUPPRESSION_KEY": "chaos-suppression-key-of-32-characters",
    "POSTAL_ADDRESS": "Example Practice, 1 Example Street",
    "LOG_LEVEL": "WARNING",
}


@dataclass
class Outcome:
    """What one scenario found."""

    name: str
    n: int
    duplicates: int = 0
    lost: int = 0
    drain_s: float | None = None  # None: the queue never drained
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.duplicates == 0 and self.lost == 0 and self.drain_s is not None


class Arrivals(FaultScript):
    """The fake's fault script, which also tells when a request has arrived whole."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.changed = threading.Condition()

    def next(self) -> Fault | None:
        with self.changed:
            self.count += 1
            self.changed.notify_all()
        return super().next()

    def wait_for(self, count: int, timeout: float) -> bool:
        """Waits until ``count`` requests have arrived in all."""
        with self.changed:
            return self.changed.wait_for(lambda: self.count >= count, timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Stage:
    """Use as a context manager; everything it started is stopped and removed on exit."""

    def __init__(self, name: str, n: int, *, backend: str = "sqlite", **env: str) -> None:
        self.outcome = Outcome(name, n)
        self.n = n
        self.backend = backend
        self.workdir = Path(tempfile.mkdtemp(prefix=f"nurture-chaos-{name}-"))
        self.fake = FakeSendGrid(api_key=API_KEY, validate="sample", record="full")
        self.arrivals = Arrivals()
        self.fake.faults = self.arrivals
        self.port = free_port()
        self.poster = EventPoster(self.fake, f"http://127.0.0.1:{self.port}/webhooks/sendgrid")
        self.env_overrides = env
        self.procs: list[subprocess.Popen[bytes]] = []
        self._exit = contextlib.ExitStack()
        self.started = 0.0
        self._last_tick = 0.0

    # -- set-up ------------------------------------------------------------------------

    def __enter__(self) -> Stage:
        try:
            url = self._exit.enter_context(newsletter.database_for(self.backend, self.workdir))
            with _MIGRATING:  # Alembic keeps global state: one migration at a time
                database.upgrade(url)
            self.engine = database.make_engine(url)
            self._exit.callback(self.engine.dispose)
            newsletter.seed(self.engine, self.n)
            self._exit.enter_context(self.fake)  # first: its URL names the bound port
            self.env = self._environment(url)
            self.poster.start()
            self._exit.callback(self.poster.stop)
        except BaseException:
            self._exit.close()
            raise
        self.started = time.monotonic()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait()
        self._exit.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _environment(self, url: str) -> dict[str, str]:
        campaigns = self.workdir / "campaigns"
        shutil.copytree(ROOT / "campaigns", campaigns)
        for old in (campaigns / "newsletters").glob("*.md"):
            old.unlink()
        zone = ZoneInfo(BASE_ENV["TIMEZONE"])
        send_at = utcnow().astimezone(zone) - timedelta(minutes=5)
        (campaigns / "newsletters" / f"{send_at:%Y-%m-%d}-chaos-note.md").write_text(
            "---\nsubject: A short note\npreheader: A few lines for the week ahead\n"
            f'send_at: "{send_at:%Y-%m-%d %H:%M}"\n---\n'
            "Hello {{ first_name }},\n\nA short note, sent once.\n\n{{ therapist_name }}\n"
        )
        values = {
            **BASE_ENV,
            "VAR_DIR": str(self.workdir / "var"),
            "DATABASE_URL": url,
            "CAMPAIGNS_DIR": str(campaigns),
            "TEMPLATES_DIR": str(ROOT / "templates"),
            "SENDGRID_HOST": self.fake.url,
            "SENDGRID_WEBHOOK_PUBLIC_KEY": self.poster.signer.public_key,
            "BASE_URL": f"http://127.0.0.1:{self.port}",
            **self.env_overrides,
        }
        clean = {k: v for k, v in os.environ.items() if not k.startswith("NURTURE_")}
        return {**clean, **{f"NURTURE_{k}": v for k, v in values.items()}}

    # -- the service's processes -------------------------------------------------------

    def spawn(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        """Starts ``nurture ARGS`` (its stderr kept in the work folder)."""
        log = (self.workdir / f"{args[0]}-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [*NURTURE, *args],
            cwd=self.workdir,  # no stray .env file is read
            env={**self.env, **{f"NURTURE_{k}": v for k, v in env.items()}},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def serve(
        self, *, web: bool = True, scheduler: bool = True, **env: str
    ) -> subprocess.Popen[bytes]:
        """``nurture serve``; only one process per stage may have the web half."""
        args = ["serve", "--port", str(self.port)]
        if not web:
            args.append("--no-web")
        if not scheduler:
            args.append("--no-scheduler")
        return self.spawn(*args, **env)

    def tick(self, *args: str, **env: str) -> int:
        """Runs ``nurture tick ARGS`` to the end (as cron would); its exit status."""
        return self.spawn("tick", *args, **env).wait(timeout=120)

    def kill(self, *procs: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> list[int]:
        """Signals ``procs`` at once, then waits for them; their exit statuses."""
        for proc in procs:
            proc.send_signal(sig)
        return [proc.wait(timeout=60) for proc in procs]

    # -- watching ----------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        with database.reading(self.engine) as conn:
            rows = conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status))
            return {status: count for status, count in rows}

    def wait_until(self, check: Any, timeout: float, step: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return True
            time.sleep(step)
        return False

    def in_flight(self, status: str = "sending") -> bool:
        return self.counts().get(status, 0) > 0

    def housekeeping_due(self) -> bool:
        """A lease ran out, or an unknown row's wait for events did (as cron would see)."""
        now = utcnow()
        # The shortest wait housekeeping may apply (events for later requests arrived).
        window = timedelta(minutes=int(self.env["NURTURE_UNKNOWN_EVENT_GRACE_MINUTES"]))
        with database.reading(self.engine) as conn:
            lease = conn.execute(
                select(func.min(outbox.c.lease_until)).where(outbox.c.status == "sending")
            ).scalar()
            unknown = conn.execute(
                select(func.min(outbox.c.updated_at)).where(outbox.c.status == "unknown")
            ).scalar()
        return (lease is not None and lease < now) or (
            unknown is not None and unknown + window < now
        )

    def housekeep(self) -> None:
        """Runs ``nurture tick`` if housekeeping has work, at most every TICK_EVERY_S."""
        if time.monotonic() - self._last_tick > TICK_EVERY_S and self.housekeeping_due():
            self.tick()
            self._last_tick = time.monotonic()

    def drain(self, timeout: float = 300.0) -> Outcome:
        """Waits for every subscriber's row to be final, running ``nurture tick`` (whose
        housekeeping expires leases and settles unknown rows) whenever it has work, as an
        operator's cron would; then counts duplicates and lost emails."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            counts = self.counts()
            if sum(counts.values()) >= self.n and not any(counts.get(s) for s in IN_FLIGHT):
                self.outcome.drain_s = time.monotonic() - self.started
                break
            if counts.get("sending") or counts.get("unknown"):
                self.housekeep()
            time.sleep(0.25)
        else:
            self.outcome.notes.append(f"not drained: {self.counts()}")
        return self.tally()

    def tally(self) -> Outcome:
        """Duplicates and lost emails, from what the fake accepted."""
        seen: Counter[tuple[str, str]] = Counter()
        for accepted in self.fake.accepted:
            assert accepted.body is not None
            subject = accepted.body.get("subject", "")
            for item in accepted.body["personalizations"]:
                for party in item["to"]:
                    seen[(party["email"], item.get("subject") or subject)] += 1
        self.outcome.duplicates = sum(c - 1 for c in seen.values() if c > 1)
        got = {email for email, _ in seen}
        self.outcome.lost = sum(f"reader{x}@example.org" not in got for x in range(1, self.n + 1))
        counts = self.counts()
        if counts.get("failed"):
            self.outcome.notes.append(f"{counts['failed']} rows failed")
        return self.outcome

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of every process's log, for a scenario that went wrong."""
        out = []
        for path in sorted(self.workdir.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"== {path.name}\n" + "\n".join(text))
        return "\n".join(out)


@contextlib.contextmanager
def running(stage: Stage, *procs: subprocess.Popen[bytes]) -> Iterator[None]:
    """Stops ``procs`` with SIGTERM on leaving (a clean stop, as systemd does)."""
    try:
        yield
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
