"""Fakes of nurture's own interfaces, shipped in the package for fast tests.

Third-party stand-ins that speak a real protocol live beside this module: the fake
SendGrid HTTP server in :mod:`nurture.testing.sendgrid` and the Event Webhook signer in
:mod:`nurture.testing.webhook_signing`. They need the ``nurture[testing]`` extra; these
here replace nurture's own seams only and need nothing beyond nurture itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from nurture.mail.messages import Batch
from nurture.providers.base import Outcome, Provider, SendResult


class FakeProvider(Provider):
    """Accepts everything and remembers it; ``refuse`` lists addresses to fail for good."""

    name = "fake"
    max_recipients = 1000

    def __init__(self, refuse: set[str] | None = None) -> None:
        self.batches: list[Batch] = []
        self.refuse = refuse or set()
        self._counter = 0

    def send_chunk(self, batch: Batch) -> list[SendResult]:
        self.batches.append(batch)
        results = []
        for recipient in batch.recipients:
            self._counter += 1
            if recipient.email in self.refuse:
                results.append(
                    SendResult(recipient, Outcome.FAILED, error="refused by FakeProvider")
                )
            else:
                results.append(
                    SendResult(recipient, Outcome.SENT, message_id=f"fake-{self._counter}")
                )
        return results

    @property
    def sent(self) -> list[tuple[str, Batch]]:
        """(address, batch) for every recipient accepted, in order."""
        return [
            (r.email, b) for b in self.batches for r in b.recipients if r.email not in self.refuse
        ]


@dataclass
class FakeClock:
    """A clock tests move by hand; pass ``clock.now()`` wherever nurture takes ``now``."""

    current: datetime = field(default_factory=lambda: datetime(2026, 3, 1, 9, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current
