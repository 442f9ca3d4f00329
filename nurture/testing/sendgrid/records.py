"""What the fake SendGrid saw: the requests it accepted and the answers it gave.

A :class:`Ledger` keeps one :class:`Accepted` per accepted request (the body too, or
counts only, so that a million-recipient benchmark runs in flat memory) and the status
of every answer. :func:`deliveries` turns an accepted body back into the
:class:`Delivered` messages SendGrid would send, one per recipient, substitutions made.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


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


class Ledger:
    """Accepted requests and answered statuses, in arrival order; safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # tests wait on it, not a sleep
        self._accepted: list[Accepted] = []
        self._statuses: list[int | None] = []
        self._recipient_count = 0

    def keep(self, record: Accepted | None, status: int | None) -> None:
        """Notes one answer (``None`` for a dropped connection) and what it accepted."""
        with self._lock:
            self._statuses.append(status)
            if record is not None:
                self._accepted.append(record)
                if not record.sandbox:
                    self._recipient_count += record.recipient_count
            self._changed.notify_all()

    def wait_accepted(self, count: int = 1, *, timeout: float = 10.0) -> bool:
        """Blocks until ``count`` requests were accepted; ``False`` when ``timeout`` ran out.

        The answer to a request may be lost while the server still takes it (a dropped
        connection after acceptance): a test waits here for the record, not in a loop.
        """
        with self._changed:
            return self._changed.wait_for(lambda: len(self._accepted) >= count, timeout)

    @property
    def accepted(self) -> list[Accepted]:
        """A copy of the accepted requests."""
        with self._lock:
            return list(self._accepted)

    @property
    def statuses(self) -> list[int | None]:
        """A copy of the answered statuses."""
        with self._lock:
            return list(self._statuses)

    @property
    def requests_count(self) -> int:
        """Requests answered (or dropped)."""
        with self._lock:
            return len(self._statuses)

    @property
    def recipient_count(self) -> int:
        """Recipients accepted for delivery, sandbox requests excluded."""
        with self._lock:
            return self._recipient_count


def deliveries(accepted: Accepted) -> Iterator[Delivered]:
    """Each recipient's message in an accepted request; none when only a summary was kept."""
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


def _substitute(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(key, value)
    return text
