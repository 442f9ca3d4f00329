"""The floor: the least work any exactly-once sender in Python must do for N emails.

No framework, no ORM, no templates, no subscriber table: only what cannot be left out.

- per recipient: two 128-bit HMAC link tokens (unsubscribe, preferences) and a SendGrid
  personalization (to, substitutions, List-Unsubscribe headers, custom_args);
- per 1,000 recipients: one JSON body with the shared content, posted over loopback
  HTTP to the same fake SendGrid process the real run uses, from two threads (each
  with its own keep-alive connection);
- bookkeeping, on the backend being compared: an INSERT per email, a committed
  "sending" mark per batch before its request, and a committed "sent" mark after.

The real run is divided by this one, measured in the same process against the same
fake, so the ratio survives a noisy machine better than seconds do.
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import http.client
import os
import sqlite3
import threading
import time
import urllib.parse
from base64 import urlsafe_b64encode
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg

BATCH = 1000
THREADS = 2
_SCHEMA = (
    "CREATE TABLE floor_outbox (id BIGINT PRIMARY KEY, status VARCHAR(16) NOT NULL,"
    " message_id VARCHAR(200))"
)


@dataclass
class Floor:
    backend: str
    n: int
    seconds: float
    requests: int
    cpu_s: float = 0.0  # this process's CPU (user + system) during the run


class _Book:
    """The bookkeeping on one backend: a connection per thread, plain DB-API."""

    def __init__(self, connect: Callable[[], Any], marker: str) -> None:
        self.connect = connect
        self.p = marker  # "?" for sqlite3, "%s" for psycopg

    def insert(self, conn: Any, first: int, count: int) -> None:
        ids = list(range(first, first + count))
        if self.p == "?":  # sqlite3's executemany loops in C
            conn.executemany(
                "INSERT INTO floor_outbox (id, status) VALUES (?, 'queued')", [(i,) for i in ids]
            )
        else:  # one statement, one round trip
            conn.execute(
                "INSERT INTO floor_outbox (id, status)"
                " SELECT x, 'queued' FROM unnest(%s::bigint[]) x",
                (ids,),
            )

    def mark(self, conn: Any, first: int, count: int, status: str, message_id: str | None) -> None:
        conn.execute(
            f"UPDATE floor_outbox SET status = {self.p}, message_id = {self.p}"
            f" WHERE id >= {self.p} AND id < {self.p}",
            (status, message_id, first, first + count),
        )
        conn.commit()


def _sqlite_book(path: str) -> _Book:
    def connect() -> Any:
        conn = sqlite3.connect(path, timeout=60, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    with connect() as conn:
        conn.execute(_SCHEMA)
    return _Book(connect, "?")


def _postgres_book(url: str) -> _Book:
    def connect() -> Any:
        return psycopg.connect(url)

    with connect() as conn:
        conn.execute(_SCHEMA)
    return _Book(connect, "%s")


def _signer(key: bytes, purpose: str) -> Callable[[bytes], str]:
    """HMAC-SHA256 cut to 128 bits, with the padded key absorbed once (RFC 2104)."""
    block = hmac.digest(key, purpose.encode(), "sha256").ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def sign(value: bytes) -> str:
        i = inner.copy()
        i.update(value)
        o = outer.copy()
        o.update(i.digest())
        return urlsafe_b64encode(o.digest()[:16]).rstrip(b"=").decode()

    return sign


def bookkeeper(backend: str, db_url: str) -> _Book:
    """The floor's table on ``backend``; ``db_url`` is a SQLite path or a libpq URL."""
    return _sqlite_book(db_url) if backend == "sqlite" else _postgres_book(db_url)


def run(backend: str, n: int, db_url: str, fake_url: str, *, html: str, text: str) -> Floor:
    """Sends N emails the least-work way; ``db_url`` is a SQLite path or a libpq URL."""
    book = bookkeeper(backend, db_url)
    unsubscribe, preferences = _signer(b"floor", "unsub"), _signer(b"floor", "prefs")
    base = "https://mail.example-practice.com"
    target = urllib.parse.urlsplit(fake_url)
    shared = {
        "from": {"email": "alex@example-practice.com", "name": "Alex Morgan"},
        "subject": "A gentle note",
        "content": [{"type": "text/plain", "value": text}, {"type": "text/html", "value": html}],
        "categories": ["newsletters"],
    }
    headers = {"Authorization": "Bearer SG.bench", "Content-Type": "application/json"}
    starts = iter(range(0, n, BATCH))
    take = threading.Lock()
    requests = [0]
    stamp = str(int(time.time())).encode()

    def personalization(i: int) -> dict[str, Any]:
        public_id = f"pub{i}".encode()
        value = public_id + b"." + stamp
        u = f"{value.decode()}.{unsubscribe(value)}"
        p = f"{value.decode()}.{preferences(value)}"
        unsubscribe_url = f"{base}/unsubscribe/{u}"
        return {
            "to": [{"email": f"reader{i}@example.org"}],
            "substitutions": {
                "%%first_name%%": "Reader",
                "%%unsubscribe_url%%": unsubscribe_url,
                "%%preferences_url%%": f"{base}/preferences/{p}",
            },
            "headers": {
                "List-Unsubscribe": f"<{unsubscribe_url}>, <mailto:unsubscribe+{u}@example.org>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
            "custom_args": {"outbox_id": str(i)},
        }

    errors: list[BaseException] = []

    def worker() -> None:
        try:
            send_all()
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    def send_all() -> None:
        conn = book.connect()
        http_conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        try:
            while True:
                with take:
                    first = next(starts, None)
                if first is None:
                    return
                count = min(BATCH, n - first)
                book.insert(conn, first, count)
                book.mark(conn, first, count, "sending", None)  # committed before the request
                people = [personalization(i) for i in range(first, first + count)]
                body = orjson.dumps({"personalizations": people, **shared})
                http_conn.request("POST", "/v3/mail/send", body, headers)
                response = http_conn.getresponse()
                response.read()
                if response.status >= 300:
                    raise RuntimeError(f"fake SendGrid answered {response.status}")
                book.mark(conn, first, count, "sent", response.getheader("X-Message-Id"))
                with take:
                    requests[0] += 1
        finally:
            http_conn.close()
            conn.close()

    # The same collector setting as a dispatch pass (nurture.delivery.collection):
    # without it the floor would pay a cost the real run has learnt to avoid.
    saved = gc.get_threshold()
    gc.set_threshold(max(saved[0], 20_000), *saved[1:])
    cpu = os.times()
    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        gc.set_threshold(*saved)
    if errors:
        raise errors[0]
    seconds = time.perf_counter() - started
    used = sum(os.times()[:2]) - sum(cpu[:2])
    return Floor(backend, n, seconds, requests[0], used)
