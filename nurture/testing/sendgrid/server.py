"""The fake SendGrid itself: a threaded HTTP server on loopback.

:class:`FakeSendGrid` binds a port, answers ``POST /v3/mail/send`` as SendGrid does
(401 without the right bearer token, 400 with the errors a
:class:`~nurture.testing.sendgrid.validation.Validator` finds, else 202 with
``X-Message-Id``, or 200 in sandbox mode), plays any scripted
:class:`~nurture.testing.sendgrid.faults.Fault` and notes everything in a
:class:`~nurture.testing.sendgrid.records.Ledger`.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

from nurture.testing.sendgrid.faults import Fault, FaultScript
from nurture.testing.sendgrid.records import Accepted, Delivered, Ledger, deliveries
from nurture.testing.sendgrid.rules import Error, error
from nurture.testing.sendgrid.validation import Validator

try:
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson is an optional speed-up
    from json import loads as _loads  # type: ignore[assignment]


class FakeSendGrid:
    """A threaded HTTP server on loopback that speaks ``POST /v3/mail/send``.

    Use it as a context manager (or :meth:`start` / :meth:`stop`). ``api_key``: the
    one bearer token accepted (any token when ``None``). ``validate``: ``"full"``
    runs the schema over the whole body; ``"sample"`` over the envelope and the
    first :data:`~nurture.testing.sendgrid.rules.SAMPLE_SIZE` personalizations only,
    while the count, name, size and address rules still see every personalization
    (for benchmarks). ``refuse_addresses``: a request holding one of them is answered
    400 naming it, as SendGrid does for a bad address (``error_fields=False`` leaves
    out which one). ``record``: ``"full"`` keeps every accepted body; ``"summary"``
    keeps counts only, so a million-recipient benchmark runs in flat memory.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        validate: Literal["full", "sample"] = "full",
        refuse_addresses: Iterable[str] = (),
        error_fields: bool = True,
        record: Literal["full", "summary"] = "full",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.record = record
        self.host = host
        self.port = port
        self.validator = Validator(
            validate=validate, refuse_addresses=refuse_addresses, error_fields=error_fields
        )
        self.faults = FaultScript()
        self.ledger = Ledger()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # Validation settings, changeable between requests ---------------------------------

    @property
    def validate(self) -> Literal["full", "sample"]:
        """How much of each body the schema sees: ``"full"`` or ``"sample"``."""
        return self.validator.validate

    @validate.setter
    def validate(self, value: Literal["full", "sample"]) -> None:
        self.validator.validate = value

    @property
    def refuse_addresses(self) -> set[str]:
        """The addresses answered as invalid (lower-case); add to it at any time."""
        return self.validator.refuse_addresses

    @refuse_addresses.setter
    def refuse_addresses(self, value: Iterable[str]) -> None:
        self.validator.refuse_addresses = {a.lower() for a in value}

    @property
    def error_fields(self) -> bool:
        """Whether an error for a refused address names the field that holds it."""
        return self.validator.error_fields

    @error_fields.setter
    def error_fields(self, value: bool) -> None:
        self.validator.error_fields = value

    # Life cycle ----------------------------------------------------------------------

    def start(self) -> FakeSendGrid:
        """Binds and serves in a daemon thread; returns ``self``."""
        self._stopping.clear()
        self._httpd = _Server((self.host, self.port), _Handler)
        self._httpd.fake = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-sendgrid",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving; slow scripted answers are cut short."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeSendGrid:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL to use as ``SENDGRID_HOST``."""
        return f"http://{self.host}:{self.port}"

    # Scripting -----------------------------------------------------------------------

    def fail_next(
        self,
        status: int | None = None,
        *,
        reset_in: float = 1.0,
        delay: float = 0.0,
        drop: bool = False,
        accept: bool = False,
        times: int = 1,
    ) -> None:
        """Scripts the answer to the next ``times`` requests, after those already queued.

        ``status``: answer that status instead (a 429 carries ``X-RateLimit-Reset``
        ``reset_in`` seconds ahead). ``delay``: wait that long before answering.
        ``drop``: close the connection without answering. ``accept`` (with ``status``
        or ``drop``): whether a valid request still counts as accepted, as when
        SendGrid took the mail but the answer was lost; off by default. A ``delay``
        alone answers as usual, late: a client that gave up meanwhile never learns
        that the mail was accepted.
        """
        fault = Fault(status=status, reset_in=reset_in, delay=delay, drop=drop, accept=accept)
        self.faults.add(fault, times)

    # What happened -------------------------------------------------------------------

    def wait_accepted(self, count: int = 1, *, timeout: float = 10.0) -> bool:
        """Blocks until ``count`` requests were accepted (see :meth:`Ledger.wait_accepted`)."""
        return self.ledger.wait_accepted(count, timeout=timeout)

    @property
    def accepted(self) -> list[Accepted]:
        """Every accepted request, in arrival order."""
        return self.ledger.accepted

    @property
    def statuses(self) -> list[int | None]:
        """The status answered to each request in order; ``None`` for a dropped one."""
        return self.ledger.statuses

    @property
    def requests_count(self) -> int:
        """Requests received, whatever the answer."""
        return self.ledger.requests_count

    @property
    def recipient_count(self) -> int:
        """Recipients accepted for delivery (sandbox requests excluded)."""
        return self.ledger.recipient_count

    def recipients(self) -> list[str]:
        """Every address accepted for delivery (sandbox requests excluded), in order."""
        return [m.to for m in self.messages()]

    def messages(self) -> list[Delivered]:
        """Each recipient's message as SendGrid would deliver it (``record="full"`` only)."""
        return [m for a in self.accepted if not a.sandbox for m in deliveries(a)]

    # Request handling ----------------------------------------------------------------

    def check(self, body: Any) -> list[Error]:
        """Every problem SendGrid would report for ``body``; empty when it is valid."""
        return self.validator.check(body)[0]

    def _authorised(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer ") or len(header) <= len("Bearer "):
            return False
        if self.api_key is None:
            return True
        return hmac.compare_digest(header[len("Bearer ") :].encode(), self.api_key.encode())

    def _answer(self, path: str, authorization: str | None, raw: bytes) -> _Answer:
        """What SendGrid would answer, and what it would keep if the answer is sent."""
        if path.split("?", 1)[0] != "/v3/mail/send":
            return _Answer(404, {"errors": [error("Not found.", None)]})
        if not self._authorised(authorization):
            message = "The provided authorization grant is invalid, expired, or revoked"
            return _Answer(401, {"errors": [error(message, None)]})
        try:
            body = _loads(raw)
        except ValueError:
            return _Answer(400, {"errors": [error("Bad Request", None)]})
        errors, count = self.validator.check(body)
        if errors:
            return _Answer(400, {"errors": errors})
        sandbox = bool(((body.get("mail_settings") or {}).get("sandbox_mode") or {}).get("enable"))
        record = Accepted(
            message_id=secrets.token_urlsafe(16),
            sandbox=sandbox,
            recipient_count=count,
            body=body if self.record == "full" else None,
        )
        return _Answer(200 if sandbox else 202, None, record)


@dataclass
class _Answer:
    status: int
    payload: dict[str, Any] | None
    accepted: Accepted | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    fake: FakeSendGrid

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout, test over) is expected here; stay quiet.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fault = fake.faults.next()
        if fault is not None and fault.delay:
            fake._stopping.wait(fault.delay)
        answer = fake._answer(self.path, self.headers.get("Authorization"), raw)
        if fault is None or (fault.status is None and not fault.drop):
            # No fault, or only a slow one: the usual answer, perhaps late.
            fake.ledger.keep(answer.accepted, answer.status)
            self._send(answer.status, answer.payload, answer.accepted)
            return
        kept = answer.accepted if fault.accept else None
        if fault.drop:
            fake.ledger.keep(kept, None)
            self.close_connection = True
            return
        assert fault.status is not None
        fake.ledger.keep(kept, fault.status)
        payload = {"errors": [error(fault.message, None)]}
        self._send(fault.status, payload, None, fault.headers())

    def do_GET(self) -> None:
        self._send(405, {"errors": [error("Method not allowed.", None)]}, None)

    def _send(
        self,
        status: int,
        payload: dict[str, Any] | None,
        accepted: Accepted | None,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        if accepted is not None:
            self.send_header("X-Message-Id", accepted.message_id)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass
