"""A fake SendGrid Mail Send API: real HTTP on loopback, strict about what it accepts.

Tests point ``NURTURE_SENDGRID_HOST`` at :attr:`FakeSendGrid.url` and drive the
official client at it, so everything between our provider and the wire is exercised.
The server checks the bearer token, validates every body against SendGrid's JSON
Schema (``mail_send_request.schema.json``, a copy of ``shared/sendgrid``'s kept in the
package) plus the rules the schema leaves out, and answers like SendGrid: 400 with
``{"errors": [{"message", "field"}]}``, or 202 with ``X-Message-Id`` (200 in sandbox
mode). It records what it accepted and can be scripted to misbehave
(:meth:`FakeSendGrid.fail_next`) or to refuse given addresses.

Run it on its own (for a benchmark, away from the sender's GIL) with
``python -m nurture.testing.sendgrid_server --port 8025 --validate sample``.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import json
import math
import re
import secrets
import signal
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from types import TracebackType
from typing import Any, Literal

import jsonschema

try:
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson is an optional speed-up
    from json import loads as _loads  # type: ignore[assignment]

#: Personalizations checked against the schema in ``validate="sample"`` mode.
SAMPLE_SIZE = 5
MAX_RECIPIENTS = 1000
MAX_SUBSTITUTION_BYTES = 10_000
MAX_CUSTOM_ARGS_BYTES = 10_000
MAX_SEND_AT_AHEAD = 72 * 3600
#: Headers a request may not set (SendGrid's documented list), lower-cased.
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "x-sg-id", "x-sg-eid", "received", "dkim-signature", "Content-Type",
        "Content-Transfer-Encoding", "To", "From", "Subject", "Reply-To", "CC", "BCC",
    )
)  # fmt: skip
_BAD_NAME = re.compile(r"[;,]")

Error = dict[str, Any]


def load_schema() -> dict[str, Any]:
    """The ``/v3/mail/send`` request schema shipped with the package."""
    text = resources.files("nurture.testing").joinpath("mail_send_request.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


@dataclass(frozen=True)
class Fault:
    """One scripted answer; see :meth:`FakeSendGrid.fail_next`."""

    status: int | None = None
    reset_in: float = 1.0
    delay: float = 0.0
    drop: bool = False
    accept: bool = False


@dataclass(frozen=True)
class Accepted:
    """One accepted request; ``body`` is ``None`` when the server keeps summaries only."""

    message_id: str
    sandbox: bool
    recipient_count: int
    body: dict[str, Any] | None


@dataclass(frozen=True)
class Delivered:
    """One personalization of an accepted request, substituted as SendGrid would."""

    to: str
    sender: str
    subject: str
    text: str
    html: str
    headers: dict[str, str]
    custom_args: dict[str, str]
    categories: list[str]
    message_id: str


class FakeSendGrid:
    """A threaded HTTP server on loopback that speaks ``POST /v3/mail/send``.

    Use it as a context manager (or :meth:`start` / :meth:`stop`). ``api_key``: the
    one bearer token accepted (any token when ``None``). ``validate``: ``"full"``
    runs the schema over the whole body; ``"sample"`` over the envelope and the
    first :data:`SAMPLE_SIZE` personalizations only, while the count, name, size and
    address rules still see every personalization (for benchmarks).
    ``refuse_addresses``: a request holding one of them is answered 400 naming it, as
    SendGrid does for a bad address (``error_fields=False`` leaves out which one).
    ``record``: ``"full"`` keeps every accepted body; ``"summary"`` keeps counts only,
    so a million-recipient benchmark runs in flat memory.
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
        self.validate = validate
        self.refuse_addresses = {a.lower() for a in refuse_addresses}
        self.error_fields = error_fields
        self.record = record
        self.host = host
        self.port = port
        self._validator = jsonschema.Draft202012Validator(
            load_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._accepted: list[Accepted] = []
        self._statuses: list[int | None] = []
        self._recipient_count = 0
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

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
        with self._lock:
            self._faults.extend([fault] * times)

    # What happened -------------------------------------------------------------------

    @property
    def accepted(self) -> list[Accepted]:
        """Every accepted request, in arrival order."""
        with self._lock:
            return list(self._accepted)

    @property
    def statuses(self) -> list[int | None]:
        """The status answered to each request in order; ``None`` for a dropped one."""
        with self._lock:
            return list(self._statuses)

    @property
    def requests_count(self) -> int:
        """Requests received, whatever the answer."""
        with self._lock:
            return len(self._statuses)

    @property
    def recipient_count(self) -> int:
        """Recipients accepted for delivery (sandbox requests excluded)."""
        with self._lock:
            return self._recipient_count

    def recipients(self) -> list[str]:
        """Every address accepted for delivery (sandbox requests excluded), in order."""
        return [m.to for m in self.messages()]

    def messages(self) -> list[Delivered]:
        """Each recipient's message as SendGrid would deliver it (``record="full"`` only)."""
        return [m for a in self.accepted if not a.sandbox for m in _deliveries(a)]

    # Request handling ----------------------------------------------------------------

    def check(self, body: Any) -> list[Error]:
        """Every problem SendGrid would report for ``body``; empty when it is valid."""
        return self._check(body)[0]

    def _check(self, body: Any) -> tuple[list[Error], int]:
        """The problems with ``body`` and its number of recipients."""
        if not isinstance(body, dict):
            return [_error("The request body must be a JSON object.", None)], 0
        target = body
        personalizations = body.get("personalizations")
        sampled = (
            self.validate == "sample"
            and isinstance(personalizations, list)
            and len(personalizations) > SAMPLE_SIZE
        )
        if sampled and isinstance(personalizations, list):
            target = {**body, "personalizations": personalizations[:SAMPLE_SIZE]}
        errors = [
            _error(e.message, ".".join(str(p) for p in e.absolute_path) or None)
            for e in self._validator.iter_errors(target)
        ]
        found, count = self._rules(body, sampled=sampled)
        errors.extend(found)
        return errors[:50], count

    def _rules(self, body: dict[str, Any], *, sampled: bool) -> tuple[list[Error], int]:
        """The rules the schema leaves out, applied to every personalization; and the count."""
        errors: list[Error] = []
        personalizations = body.get("personalizations")
        if not isinstance(personalizations, list):
            return errors, 0
        if sampled and len(personalizations) > MAX_RECIPIENTS:
            errors.append(_error("Too many personalizations (at most 1000).", "personalizations"))
        if "reply_to" in body and "reply_to_list" in body:
            errors.append(
                _error("reply_to and reply_to_list cannot be used together.", "reply_to_list")
            )
        for field, party in _named_parties(body):
            if _BAD_NAME.search(str(party.get("name") or "")):
                errors.append(_error("Names may not contain ';' or ','.", f"{field}.name"))
        errors.extend(_content_rules(body))
        errors.extend(_header_rules(body.get("headers"), "headers"))
        if _size(body.get("custom_args")) > MAX_CUSTOM_ARGS_BYTES:
            errors.append(_error("custom_args may not exceed 10,000 bytes.", "custom_args"))
        errors.extend(_send_at_rule(body.get("send_at"), "send_at"))
        total = 0
        for i, item in enumerate(personalizations):
            # Most personalizations are plainly fine; only the others get a close look.
            count = self._quick_count(item)
            if count is None:
                count, found = self._inspect(i, item, strict=sampled and i >= SAMPLE_SIZE)
                errors.extend(found)
            total += count
        if total > MAX_RECIPIENTS:
            errors.append(
                _error(
                    f"The total number of recipients must be at most 1000 (got {total}).",
                    "personalizations",
                )
            )
        if (
            not body.get("subject")
            and not body.get("template_id")
            and not all(isinstance(p, dict) and p.get("subject") for p in personalizations)
        ):
            errors.append(_error("The subject is required.", "subject"))
        return errors, total

    def _quick_count(self, item: Any) -> int | None:
        """The recipients of a personalization that plainly breaks no rule, else ``None``.

        The benchmark's hot path (a million personalizations): conservative, so that
        ``None`` only means "look closer" with :meth:`_inspect`.
        """
        if type(item) is not dict:
            return None
        emails = []
        for kind in ("to", "cc", "bcc"):
            parties = item.get(kind)
            if parties is None:
                if kind == "to":
                    return None
                continue
            if type(parties) is not list:
                return None
            for party in parties:
                email = party.get("email") if type(party) is dict else None
                if type(email) is not str or "@" not in email:
                    return None
                name = party.get("name")
                if name is not None and (type(name) is not str or "," in name or ";" in name):
                    return None
                emails.append(email)
        if self.refuse_addresses or len(emails) > 1:
            lowered = {e.lower() for e in emails}
            if len(lowered) != len(emails) or not self.refuse_addresses.isdisjoint(lowered):
                return None
        headers = item.get("headers")
        if headers is not None and not (
            _small_strings(headers, 1 << 30)
            and RESERVED_HEADERS.isdisjoint(map(str.lower, headers))
        ):
            return None
        substitutions = item.get("substitutions")
        if substitutions is not None and not _small_strings(substitutions, MAX_SUBSTITUTION_BYTES):
            return None
        args = item.get("custom_args")
        if args is not None and not _small_strings(args, MAX_CUSTOM_ARGS_BYTES):
            return None
        if "send_at" in item:
            return None
        return len(emails)

    def _inspect(self, i: int, item: Any, *, strict: bool) -> tuple[int, list[Error]]:
        """Recipient count and every rule a personalization breaks.

        ``strict`` adds the structural checks the schema makes, for personalizations the
        schema did not see (past the sample).
        """
        where = f"personalizations.{i}"
        if not isinstance(item, dict):
            return 0, [_error("A personalization must be an object.", where)] if strict else []
        errors: list[Error] = []
        count = 0
        seen: set[str] = set()
        for kind in ("to", "cc", "bcc"):
            parties = item.get(kind)
            if parties is None:
                if kind == "to" and strict:
                    errors.append(_error("The to field is required.", f"{where}.to"))
                continue
            if not isinstance(parties, list):
                if strict:
                    errors.append(_error(f"{kind} must be an array.", f"{where}.{kind}"))
                continue
            count += len(parties)
            for j, party in enumerate(parties):
                errors.extend(self._party_rules(party, f"{where}.{kind}.{j}", seen))
        errors.extend(_personalization_rules(item, where, strict=strict))
        return count, errors

    def _party_rules(self, party: Any, field: str, seen: set[str]) -> list[Error]:
        if not isinstance(party, dict) or not isinstance(party.get("email"), str):
            return [_error("Each recipient must have an email.", f"{field}.email")]
        email = party["email"].lower()
        errors = []
        if "@" not in email or email in self.refuse_addresses:
            where = f"{field}.email" if self.error_fields else None
            errors.append(_error("Does not contain a valid address.", where))
        if email in seen:
            errors.append(
                _error(
                    "Each email address in the personalization block should be unique "
                    "between to, cc, and bcc.",
                    f"{field}.email",
                )
            )
        seen.add(email)
        if _BAD_NAME.search(str(party.get("name") or "")):
            errors.append(_error("Names may not contain ';' or ','.", f"{field}.name"))
        return errors

    def _authorised(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer ") or len(header) <= len("Bearer "):
            return False
        if self.api_key is None:
            return True
        return hmac.compare_digest(header[len("Bearer ") :].encode(), self.api_key.encode())

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _answer(self, path: str, authorization: str | None, raw: bytes) -> _Answer:
        """What SendGrid would answer, and what it would keep if the answer is sent."""
        if path.split("?", 1)[0] != "/v3/mail/send":
            return _Answer(404, {"errors": [_error("Not found.", None)]})
        if not self._authorised(authorization):
            message = "The provided authorization grant is invalid, expired, or revoked"
            return _Answer(401, {"errors": [_error(message, None)]})
        try:
            body = _loads(raw)
        except ValueError:
            return _Answer(400, {"errors": [_error("Bad Request", None)]})
        errors, count = self._check(body)
        if errors:
            return _Answer(400, {"errors": errors})
        sandbox = bool(((body.get("mail_settings") or {}).get("sandbox_mode") or {}).get("enable"))
        record = Accepted(
            message_id=_message_id(),
            sandbox=sandbox,
            recipient_count=count,
            body=body if self.record == "full" else None,
        )
        return _Answer(200 if sandbox else 202, None, record)

    def _keep(self, record: Accepted | None, status: int | None) -> None:
        with self._lock:
            self._statuses.append(status)
            if record is not None:
                self._accepted.append(record)
                if not record.sandbox:
                    self._recipient_count += record.recipient_count


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
        fault = fake._next_fault()
        if fault is not None and fault.delay:
            fake._stopping.wait(fault.delay)
        answer = fake._answer(self.path, self.headers.get("Authorization"), raw)
        if fault is None:
            fake._keep(answer.accepted, answer.status)
            self._send(answer.status, answer.payload, answer.accepted)
            return
        kept = answer.accepted if fault.accept else None
        if fault.drop:
            fake._keep(kept, None)
            self.close_connection = True
            return
        if fault.status is None:  # only slow: the usual answer, late
            fake._keep(answer.accepted, answer.status)
            self._send(answer.status, answer.payload, answer.accepted)
            return
        fake._keep(kept, fault.status)
        headers = {}
        if fault.status == 429:
            reset = math.ceil(time.time() + fault.reset_in)
            headers = {
                "X-RateLimit-Limit": "600",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset),
            }
        message = "too many requests" if fault.status == 429 else "scripted failure"
        self._send(fault.status, {"errors": [_error(message, None)]}, None, headers)

    def do_GET(self) -> None:
        self._send(405, {"errors": [_error("Method not allowed.", None)]}, None)

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


# Rules ------------------------------------------------------------------------------


def _error(message: str, field: str | None) -> Error:
    # Schema messages can quote a whole (huge) instance: keep answers readable.
    return {"message": message if len(message) <= 300 else message[:297] + "...", "field": field}


def _named_parties(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for field in ("from", "reply_to"):
        if isinstance(body.get(field), dict):
            yield field, body[field]
    for i, party in enumerate(body.get("reply_to_list") or ()):
        if isinstance(party, dict):
            yield f"reply_to_list.{i}", party


def _content_rules(body: dict[str, Any]) -> list[Error]:
    content = body.get("content")
    if not content:
        if body.get("template_id"):
            return []
        return [_error("Unless a valid template_id is provided, content is required.", "content")]
    if not isinstance(content, list):
        return []
    types = [c.get("type") for c in content if isinstance(c, dict)]
    errors = []
    if len(set(types)) != len(types):
        errors.append(_error("Each content type may appear only once.", "content"))
    if "text/plain" in types and types[0] != "text/plain":
        errors.append(
            _error("If present, text/plain must be first, followed by text/html.", "content")
        )
    return errors


def _header_rules(headers: Any, field: str) -> list[Error]:
    if not isinstance(headers, dict):
        return []
    errors = []
    for name, value in headers.items():
        if name.lower() in RESERVED_HEADERS:
            errors.append(_error(f"The header {name} may not be set.", f"{field}.{name}"))
        if not isinstance(value, str):
            errors.append(_error("Header values must be strings.", f"{field}.{name}"))
    return errors


def _personalization_rules(item: dict[str, Any], where: str, *, strict: bool) -> list[Error]:
    errors = _header_rules(item.get("headers"), f"{where}.headers")
    substitutions = item.get("substitutions")
    if substitutions is not None:
        if strict and not (
            isinstance(substitutions, dict)
            and all(isinstance(v, str) for v in substitutions.values())
        ):
            errors.append(
                _error("Substitutions must map strings to strings.", f"{where}.substitutions")
            )
        elif _size(substitutions) > MAX_SUBSTITUTION_BYTES:
            errors.append(
                _error("Substitutions may not exceed 10,000 bytes.", f"{where}.substitutions")
            )
    args = item.get("custom_args")
    if isinstance(args, dict):
        if not all(isinstance(v, str) for v in args.values()):
            errors.append(_error("custom_args values must be strings.", f"{where}.custom_args"))
        elif _size(args) > MAX_CUSTOM_ARGS_BYTES:
            errors.append(
                _error("custom_args may not exceed 10,000 bytes.", f"{where}.custom_args")
            )
    errors.extend(_send_at_rule(item.get("send_at"), f"{where}.send_at"))
    return errors


def _send_at_rule(value: Any, field: str) -> list[Error]:
    if isinstance(value, int) and value > time.time() + MAX_SEND_AT_AHEAD:
        return [_error("send_at may be at most 72 hours ahead.", field)]
    return []


def _small_strings(mapping: Any, limit: int) -> bool:
    """Whether ``mapping`` maps strings to strings within ``limit`` bytes, cheaply."""
    if type(mapping) is not dict:
        return False
    try:
        # join() refuses anything but strings: the type check and the count in one go.
        chars = len("".join(mapping)) + len("".join(mapping.values()))
    except TypeError:
        return False
    # A character is at most 4 bytes of UTF-8: encode only when that bound is too high.
    return chars * 4 <= limit or _size(mapping) <= limit


def _size(mapping: Any) -> int:
    if not isinstance(mapping, dict):
        return 0
    return sum(len(str(k).encode()) + len(str(v).encode()) for k, v in mapping.items())


def _message_id() -> str:
    return secrets.token_urlsafe(16)


def _substitute(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def _deliveries(accepted: Accepted) -> Iterator[Delivered]:
    body = accepted.body
    if body is None:
        return
    content = {c["type"]: c["value"] for c in body.get("content") or ()}
    for item in body["personalizations"]:
        values = item.get("substitutions") or {}
        subject = item.get("subject") or body.get("subject") or ""
        for kind in ("to", "cc", "bcc"):
            for party in item.get(kind) or ():
                yield Delivered(
                    to=party["email"],
                    sender=(item.get("from") or body["from"])["email"],
                    subject=_substitute(subject, values),
                    text=_substitute(content.get("text/plain", ""), values),
                    html=_substitute(content.get("text/html", ""), values),
                    headers={**(body.get("headers") or {}), **(item.get("headers") or {})},
                    custom_args={
                        **(body.get("custom_args") or {}),
                        **(item.get("custom_args") or {}),
                    },
                    categories=list(body.get("categories") or ()),
                    message_id=accepted.message_id,
                )


def main(argv: list[str] | None = None) -> None:
    """Serves the fake on its own until interrupted; prints its URL first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key")
    parser.add_argument("--validate", choices=["full", "sample"], default="sample")
    args = parser.parse_args(argv)
    fake = FakeSendGrid(
        api_key=args.api_key,
        validate=args.validate,
        record="summary",
        host=args.host,
        port=args.port,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with fake:
        print(fake.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            done.wait()
        print(
            json.dumps({"requests": fake.requests_count, "recipients": fake.recipient_count}),
            flush=True,
        )


if __name__ == "__main__":
    main()
