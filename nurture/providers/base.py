"""The provider interface: the base class owns the send loop, subclasses fill hooks.

Modelled on django-anymail's ``BaseEmailBackend``: :meth:`Provider.send` opens the
connection, splits the batch into chunks the provider accepts, posts each chunk,
turns every outcome into a :class:`SendResult` and closes in ``finally``. Delivery
problems never escape as exceptions: the dispatcher needs a result per recipient to
record, retry or fail each outbox row on its own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

from nurture.messages import Batch, Recipient

Outcome = Literal["sent", "failed", "retry"]


@dataclass(frozen=True)
class SendResult:
    """What happened to one recipient of a batch.

    ``retry``: nothing was delivered and trying later may work (429, 5xx, timeout);
    ``retry_after`` is the provider's own wait in seconds when it gave one.
    ``failed``: the provider refused this recipient for good (its reason in ``error``).
    """

    recipient: Recipient
    outcome: Outcome
    message_id: str | None = None
    error: str | None = None
    retry_after: float | None = None


class Provider(ABC):
    """Sends batches. Subclasses implement :meth:`send_chunk` and may override the rest."""

    name: str = "base"
    #: How many recipients one provider request can carry.
    max_recipients: int = 1

    def open(self) -> None:
        """Opens a connection to reuse across chunks (SMTP). Default: nothing."""

    def close(self) -> None:
        """Closes what :meth:`open` opened. Always called, even after errors."""

    @abstractmethod
    def send_chunk(self, batch: Batch) -> list[SendResult]:
        """Sends at most :attr:`max_recipients` recipients; one result per recipient."""

    def send(self, batch: Batch) -> list[SendResult]:
        """Sends every recipient of ``batch`` and returns one result per recipient."""
        results: list[SendResult] = []
        self.open()
        try:
            for start in range(0, len(batch.recipients), self.max_recipients):
                chunk = batch.recipients[start : start + self.max_recipients]
                results.extend(self.send_chunk(_with(batch, chunk)))
        finally:
            self.close()
        return results

    def reconcile(self, outbox_id: int) -> bool | None:
        """Did the message for ``outbox_id`` leave? ``None`` when this provider cannot tell."""
        return None


def _with(batch: Batch, recipients: list[Recipient]) -> Batch:
    return Batch(batch.content, batch.sender, recipients, batch.subject_prefix)
