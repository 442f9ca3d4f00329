"""The web app's hot paths over real HTTP: webhook ingestion and sign-up.

``nurture serve --no-scheduler`` runs in a process of its own on loopback, against a
fresh database (SQLite or a PostgreSQL schema of its own), and is driven like the
outside world drives it:

- webhooks: batches of 1,000 signed SendGrid events (``processed`` and ``delivered``
  for rows already sent, as after a newsletter) are posted one after the other;
  printed as events applied per second;
- sign-up: 8 concurrent clients POST /subscribe (rate limit lifted); the clock stops
  when every confirmation email has been written by the folder provider; printed as
  sign-ups per second.

    python -m benchmarks.web [--events 100000] [--signups 2000] [--backends sqlite,postgresql]
                             [--repeat R]

With ``--repeat R`` each is measured R times and the best kept, as the newsletter does:
on a shared machine the fastest run is the one least disturbed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import func, select, text

from benchmarks.newsletter import ROOT, database_for, seed
from nurture.store import database, steps
from nurture.store.schema import outbox
from nurture.testing.webhook_signing import WebhookSigner, encode_events, make_event

CLIENTS = 8
JSON_HEADERS = {"Content-Type": "application/json"}
BATCH = 1000


@contextmanager
def running_app(url: str, workdir: Path, signer: WebhookSigner) -> Iterator[str]:
    """``nurture serve --no-scheduler`` on a free port; yields its base URL."""
    port = _free_port()
    env = {
        **os.environ,
        "NURTURE_ENV": "test",
        "NURTURE_DATABASE_URL": url,
        "NURTURE_VAR_DIR": str(workdir),
        "NURTURE_CAMPAIGNS_DIR": str(ROOT / "campaigns"),
        "NURTURE_TEMPLATES_DIR": str(ROOT / "templates"),
        "NURTURE_DELIVERY": "folder",
        "NURTURE_SECRET_KEYS": "bench-secret-key",
        "NURTURE_BASE_URL": f"http://127.0.0.1:{port}",
        "NURTURE_POSTAL_ADDRESS": "Example Practice, 1 Example Street",
        "NURTURE_SENDGRID_WEBHOOK_PUBLIC_KEY": signer.public_key,
        "NURTURE_SUBSCRIBE_RATE_LIMIT": "100000000",
        "NURTURE_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "nurture.cli.main", "serve", "--no-scheduler", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code < 600:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sent_rows(url: str, n: int) -> None:
    """N subscribers, each with one newsletter row already sent (ids 1..N)."""
    engine = database.make_engine(url)
    seed(engine, n)
    with engine.begin() as conn:
        step_id = steps.id_of(conn, "newsletters", "bench")
        conn.execute(
            text(
                "INSERT INTO outbox (subscriber_id, kind, campaign, step, step_id, due_at,"
                " status, attempts, created_at, updated_at, sent_at) SELECT id, 'newsletter',"
                " 'newsletters', 'bench', :step_id, :t, 'sent', 1, :t, :t, :t FROM subscribers"
            ),
            {"t": "2026-11-01 00:00:00", "step_id": step_id},
        )
    engine.dispose()


def webhooks(backend: str, events: int) -> float:
    """Events applied per second: signed batches of 1,000 posted one after another."""
    workdir = Path(tempfile.mkdtemp(prefix="nurture-bench-web-"))
    signer = WebhookSigner()
    rows = events // 2
    try:
        with database_for(backend, workdir) as url:
            database.upgrade(url)
            _sent_rows(url, rows)
            stamp = str(int(time.time()))
            bodies = []
            for first in range(1, rows + 1, BATCH // 2):
                batch = [
                    make_event(kind, f"reader{i}@example.org", i)
                    for i in range(first, min(first + BATCH // 2, rows + 1))
                    for kind in ("processed", "delivered")
                ]
                body = encode_events(batch)
                bodies.append((body, signer.headers(body, stamp)))
            with running_app(url, workdir, signer) as base, httpx.Client(timeout=60) as client:
                applied = 0
                started = time.perf_counter()
                for body, headers in bodies:
                    answer = client.post(f"{base}/webhooks/sendgrid", content=body, headers=headers)
                    answer.raise_for_status()
                    applied += answer.json()["applied"]
                seconds = time.perf_counter() - started
            assert applied == 2 * rows, f"{applied} of {2 * rows} events applied"
            return applied / seconds
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def signups(backend: str, count: int) -> float:
    """Sign-ups per second, from the first POST to the last confirmation written."""
    workdir = Path(tempfile.mkdtemp(prefix="nurture-bench-web-"))
    try:
        with database_for(backend, workdir) as url:
            database.upgrade(url)
            with running_app(url, workdir, WebhookSigner()) as base:
                numbers = iter(range(count))
                lock = threading.Lock()
                failures: list[str] = []

                def client() -> None:
                    # http.client, keep-alive: the load generator shares the machine's
                    # two cores with the server, and httpx spent over a millisecond of
                    # CPU per request.
                    target = urllib.parse.urlsplit(base)
                    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                    try:
                        while True:
                            with lock:
                                i = next(numbers, None)
                            if i is None:
                                return
                            body = json.dumps(_sign_up(i))
                            conn.request("POST", "/subscribe", body, JSON_HEADERS)
                            answer = conn.getresponse()
                            text = answer.read()
                            if answer.status != 202:
                                failures.append(f"{answer.status} {text[:200]!r}")
                    finally:
                        conn.close()

                started = time.perf_counter()
                threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                _wait_sent(url, count)
                seconds = time.perf_counter() - started
            if failures:
                raise RuntimeError(f"{len(failures)} sign-ups refused, first: {failures[0]}")
            return count / seconds
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _sign_up(i: int) -> dict[str, object]:
    return {
        "email": f"signup{i}@example.org",
        "campaign": "what-i-actually-do",
        "consent": True,
        "first_name": "Sam",
        "tz": "Europe/London",
        "form_url": "https://www.example-practice.com/articles/what-i-actually-do",
        "consent_version": "2026-11-v1",
    }


def _wait_sent(url: str, count: int) -> None:
    """Until ``count`` confirmation emails are written (their rows are ``sent``)."""
    engine = database.make_engine(url)
    try:
        query = select(func.count()).where(outbox.c.status == "sent")
        for _ in range(6000):
            with engine.connect() as conn:
                if conn.execute(query).scalar_one() >= count:
                    return
            time.sleep(0.01)
        raise RuntimeError("confirmations not all written within a minute")
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--signups", type=int, default=2_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the best is kept")
    args = parser.parse_args(argv)
    runs = range(max(args.repeat, 1))
    for backend in args.backends.split(","):
        rate = max(webhooks(backend, args.events) for _ in runs)
        print(f"{backend:<10} webhook events applied  {rate:10,.0f} events/s", flush=True)
    for backend in args.backends.split(","):
        if not args.signups:
            break
        rate = max(signups(backend, args.signups) for _ in runs)
        print(f"{backend:<10} sign-ups, {CLIENTS} clients     {rate:10,.0f} sign-ups/s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
