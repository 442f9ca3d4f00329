"""SendGrid's v3 Mail Send API through the official ``sendgrid`` client.

One request carries up to 1000 personalizations that share the compiled content: the
HTML and text keep their ``%%name%%`` placeholders and every personalization brings
its own ``substitutions``, so SendGrid personalises and we never render per recipient.
The request body is built as a plain dict rather than with the client's ``Mail``
helpers, and serialised by us (with orjson when it is installed, some twenty times
faster than ``json`` here): this is the hot path, a million recipients a run.
"""

from __future__ import annotations

import html
import http.client
import json
import re
import time
import urllib.error
from collections.abc import Callable
from typing import Any

import python_http_client.exceptions
import sendgrid

from nurture.exceptions import ConfigurationError
from nurture.mail.messages import Batch, Content, Recipient, header_address, placeholder
from nurture.providers import keepalive
from nurture.providers.base import ChunkError, Outcome, Provider, SendResult
from nurture.settings import Settings

try:
    import orjson

    def _dumps(body: dict[str, Any]) -> _Payload:
        return _Payload(orjson.dumps(body))

except ImportError:  # pragma: no cover - orjson is an optional speed-up

    def _dumps(body: dict[str, Any]) -> _Payload:
        return _Payload(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode())


class _Payload:
    """A serialised body that python_http_client sends as it is and logs by its size.

    The client calls ``encode()`` on a body it is told is already serialised; this one
    hands over its UTF-8 bytes as they are (no decoding and encoding again of 600 kB).
    The client also formats every payload into a debug message whether or not debug
    logging is on: a few milliseconds per request, and, with debug on, every address of
    the batch in the log. The bytes it gets print as a size instead.
    """

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = _Sized(data)

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self._data


class _Sized(bytes):
    def __str__(self) -> str:
        return f"<{len(self)} bytes>"

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return str(self)


_PERSONALIZATION_FIELD = re.compile(r"^personalizations\.(\d+)(\.|$)")
#: A media type other than exactly "application/json" makes python_http_client send
#: our own serialisation as it is instead of running ``json.dumps`` over the body.
_JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


class SendGridProvider(Provider):
    """Posts each chunk of up to 1000 recipients as one ``/v3/mail/send`` request.

    ``settings.sendgrid_host`` selects the API (a fake server in tests),
    ``sendgrid_timeout`` bounds each socket operation, ``sendgrid_sandbox`` makes
    SendGrid validate without delivering, and ``tracking`` turns its open and click
    tracking on (they are switched off explicitly otherwise). ``clock`` gives Unix
    time, to turn ``X-RateLimit-Reset`` into a wait.
    """

    name = "sendgrid"
    max_recipients = 1000
    # The client's shared state is read-only once built; a kept-alive connection
    # serves one request at a time.
    thread_safe = True
    # SendGrid's Mail Send API does not document SMTPUTF8: a non-ASCII local part is
    # refused here (the base fails that recipient alone) rather than sent mangled.
    smtputf8 = False

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        key = settings.sendgrid_api_key.get_secret_value() if settings.sendgrid_api_key else ""
        if not key:
            raise ConfigurationError("NURTURE_SENDGRID_API_KEY is required when DELIVERY=sendgrid")
        self.client = sendgrid.SendGridAPIClient(key, host=settings.sendgrid_host.rstrip("/"))
        self.client.client.timeout = settings.sendgrid_timeout
        # Set once here: the client shares this dict between requests (and threads).
        self.client.client.request_headers.update(_JSON_HEADERS)
        # The same client, reusing kept-alive connections instead of opening one per
        # request (see nurture.providers.keepalive).
        self.client.client = keepalive.keep_alive(self.client.client)
        self._mail_send = self.client.client.mail.send
        self.timeout = settings.sendgrid_timeout
        self.sandbox = settings.sendgrid_sandbox
        self.tracking = settings.tracking
        self.clock = clock

    def build_request(self, batch: Batch) -> dict[str, Any]:
        """The ``/v3/mail/send`` JSON body for ``batch`` (at most 1000 recipients)."""
        content = batch.content
        keys = _Keys(content)
        body: dict[str, Any] = {
            "personalizations": _personalizations(batch.recipients, keys),
            "from": {"email": batch.sender.email, "name": batch.sender.name},
            "subject": batch.subject,
            # SendGrid wants text/plain first, then text/html; empty parts are invalid.
            "content": [
                {"type": kind, "value": value}
                for kind, value in (("text/plain", content.text), ("text/html", content.html))
                if value
            ],
            "categories": [content.campaign],
            "tracking_settings": _tracking(self.tracking),
            "mail_settings": {"sandbox_mode": {"enable": self.sandbox}},
        }
        if batch.sender.reply_to:
            body["reply_to"] = {"email": batch.sender.reply_to}
        return body

    def send_chunk(self, batch: Batch) -> list[SendResult]:
        body = self.build_request(batch)
        try:
            response = self._mail_send.post(request_body=_dumps(body), timeout=self.timeout)
        except python_http_client.exceptions.HTTPError as exc:
            return self._refused(batch, exc)
        except urllib.error.URLError as exc:
            # urllib wraps errors raised while connecting or sending: the request did
            # not arrive whole, so SendGrid cannot have acted on it.
            raise ChunkError(f"cannot reach SendGrid: {exc.reason}", retryable=True) from exc
        except (OSError, http.client.HTTPException) as exc:
            # Raised while waiting for the answer (a read timeout, a dropped
            # connection): the request was sent and may have been accepted.
            raise ChunkError(
                f"no answer from SendGrid: {type(exc).__name__}: {exc}",
                retryable=True,
                maybe_sent=True,
            ) from exc
        message_id = response.headers.get("X-Message-Id")
        return [SendResult(r, Outcome.SENT, message_id=message_id) for r in batch.recipients]

    def _refused(
        self, batch: Batch, exc: python_http_client.exceptions.HTTPError
    ) -> list[SendResult]:
        """Maps an HTTP error answer to results, or raises :class:`ChunkError`."""
        status = int(exc.status_code)
        raw = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body)
        errors = _errors(raw)
        summary = "; ".join(_describe(e) for e in errors) or raw[:200] or str(exc.reason)
        message = f"SendGrid {status}: {summary}"
        headers = exc.headers
        if status in (401, 403):
            raise ConfigurationError(
                f"SendGrid refused the API key ({message}); check NURTURE_SENDGRID_API_KEY"
            )
        if status == 429:
            reset = _number(headers.get("X-RateLimit-Reset") if headers else None)
            wait = max(0.0, reset - self.clock()) if reset is not None else None
            raise ChunkError(message, retryable=True, retry_after=wait, status=status, response=raw)
        if status >= 500 or status == 408:
            wait = _number(headers.get("Retry-After") if headers else None)
            raise ChunkError(message, retryable=True, retry_after=wait, status=status, response=raw)
        # Another 4xx: never retried. Find out whom it is about.
        rejected: dict[int, list[str]] = {}
        elsewhere = False
        for error in errors:
            match = _PERSONALIZATION_FIELD.match(str(error.get("field") or ""))
            if match:
                rejected.setdefault(int(match.group(1)), []).append(_describe(error))
            elif error.get("field"):
                elsewhere = True
        if elsewhere:
            # The shared part (sender, subject, content) is wrong: it fails for everyone.
            return [SendResult(r, Outcome.FAILED, error=message) for r in batch.recipients]
        raise ChunkError(
            message,
            status=status,
            response=raw,
            rejected={i: f"SendGrid {status}: " + "; ".join(m) for i, m in rejected.items()},
        )


class _Keys:
    """The substitution keys one content uses, looked up once per batch, not per recipient.

    Equivalent to :func:`nurture.mail.messages.substitutions` restricted to the placeholders
    the content holds: SendGrid needs nothing else, and every byte is paid a million
    times.
    """

    def __init__(self, content: Content) -> None:
        self._content = content
        self._keys: dict[str, tuple[str | None, str | None]] = {}

    def substitutions(self, values: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        known = self._keys
        for name, value in values.items():
            keys = known.get(name)
            if keys is None:
                keys = known[name] = self._lookup(name)
            plain, in_html = keys
            if plain is not None:
                out[plain] = value
            if in_html is not None:
                out[in_html] = _escape(value)
        return out

    def _lookup(self, name: str) -> tuple[str | None, str | None]:
        found = []
        for for_html in (False, True):
            key = placeholder(name, for_html=for_html)
            used = key in self._content.html or key in self._content.text
            found.append(key if used else None)
        return found[0], found[1]


def _escape(value: str) -> str:
    # Most values (URLs with URL-safe tokens, most names) need no escaping; looking is
    # cheaper than escaping.
    if "&" in value or "<" in value or ">" in value or '"' in value or "'" in value:
        return html.escape(value, quote=True)
    return value


def _personalizations(recipients: list[Recipient], keys: _Keys) -> list[dict[str, Any]]:
    # The per-recipient hot loop: dict literals, locals, and no copies.
    substitutions = keys.substitutions
    made = []
    for recipient in recipients:
        # The base class refused every address header_address cannot write, so this
        # never raises. An ASCII address it accepted comes back unchanged: only an IDN
        # domain (punycoded here) makes the second call worth its regex.
        email = recipient.email
        if not email.isascii():
            email = header_address(email, smtputf8=False)
        entry: dict[str, Any] = {"to": [{"email": email}]}
        if recipient.values:
            values = substitutions(recipient.values)
            if values:
                entry["substitutions"] = values
        if recipient.headers:
            entry["headers"] = recipient.headers
        args = recipient.custom_args
        if recipient.outbox_id is not None and "outbox_id" not in args:
            args = {**args, "outbox_id": str(recipient.outbox_id)}
        if args:
            # Strings only (SendGrid refuses anything else): Recipient.custom_args is
            # typed dict[str, str], so no per-recipient check on this path.
            entry["custom_args"] = args
        made.append(entry)
    return made


def _tracking(enabled: bool) -> dict[str, Any]:
    # Explicit in every request: an account-level default must never switch tracking
    # on behind the practice's back. Our own List-Unsubscribe and footer link replace
    # SendGrid's subscription tracking, so that stays off either way.
    return {
        "click_tracking": {"enable": enabled, "enable_text": False},
        "open_tracking": {"enable": enabled},
        "subscription_tracking": {"enable": False},
    }


def _errors(raw: str) -> list[dict[str, Any]]:
    try:
        parsed = json.loads(raw)
    except ValueError:
        return []
    errors = parsed.get("errors") if isinstance(parsed, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _describe(error: dict[str, Any]) -> str:
    text = str(error.get("message") or "error")
    return f"{text} ({error['field']})" if error.get("field") else text


def _number(value: object) -> float | None:
    try:
        return float(str(value)) if value is not None else None
    except ValueError:
        return None
