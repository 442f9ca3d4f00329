"""The provider interface: the base class owns the send loop, subclasses fill hooks.

Modelled on django-anymail's ``BaseEmailBackend``: :meth:`Provider.send` opens the
connection, splits the batch into chunks the provider accepts, posts each chunk,
turns every outcome into a :class:`SendResult` and closes in ``finally``. Delivery
problems never escape as exceptions: the dispatcher needs a result per recipient to
record, retry or fail each outbox row on its own.

What each outcome asks of the caller (the dispatcher owns every wait; providers never
sleep and never loop on retries):

``sent``
    The provider accepted the message; record ``message_id``. Never send it again.
``failed``
    Refused for good (a bad address, content the provider will not take); ``error`` is
    the provider's reason. Trying again gives the same answer: fail the row.
``retry``
    Not accepted, and trying later may work (429, 5xx, timeout, connection lost).
    Wait at least ``retry_after`` seconds when the provider said so, otherwise back off.
    When ``maybe_sent`` is true the request may have reached the provider before the
    answer was lost (a timeout or a dropped connection after the request was sent):
    the message may be out, so reconcile (webhook events carry the outbox id in
    ``custom_args``) before sending it again.

Subclasses implement :meth:`Provider.send_chunk`. Per-recipient outcomes go in the
returned list; a refusal of the whole chunk is raised as :class:`ChunkError`, and the
base turns it into results: ``retry`` for everyone when it is retryable, otherwise it
*isolates* the bad recipients so one bad address never fails the rest of its chunk.
:class:`nurture.exceptions.ConfigurationError` (a wrong API key, a server without
STARTTLS) is the one exception allowed out of :meth:`Provider.send`, and only while
nothing has been sent yet in that call: after that it would lose the results of
chunks that did go out, so the rest of the batch gets ``retry`` instead.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from nurture.exceptions import ConfigurationError, DeliveryError
from nurture.mail.messages import Batch, Recipient, UnsendableRecipient, header_address

logger = logging.getLogger(__name__)


class Outcome(StrEnum):
    """What a provider's answer means for one recipient (see :class:`SendResult`)."""

    SENT = "sent"
    FAILED = "failed"
    RETRY = "retry"


@dataclass(slots=True)
class SendResult:
    """What happened to one recipient of a batch.

    ``retry``: nothing was accepted and trying later may work (429, 5xx, timeout);
    ``retry_after`` is the provider's own wait in seconds when it gave one, and
    ``maybe_sent`` says the request may have gone through before its answer was lost.
    ``failed``: the provider refused this recipient for good (its reason in ``error``).
    """

    recipient: Recipient
    outcome: Outcome
    message_id: str | None = None
    error: str | None = None
    retry_after: float | None = None
    maybe_sent: bool = False


class ChunkError(DeliveryError):
    """The provider refused or lost a whole chunk; raised by ``send_chunk`` only.

    It never escapes :meth:`Provider.send`. ``retryable`` (with ``retry_after`` and
    ``maybe_sent``) makes every recipient of the chunk ``retry``. Otherwise the base
    isolates the culprits: ``rejected`` maps the index of a recipient in the chunk to
    the provider's reason when the provider named them; when it did not, the base
    splits the chunk in halves until each bad recipient stands alone.
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        maybe_sent: bool = False,
        rejected: Mapping[int, str] | None = None,
        status: int | None = None,
        response: str | None = None,
        **context: Any,
    ) -> None:
        super().__init__(
            message,
            retryable=retryable,
            retry_after=retry_after,
            status=status,
            response=response,
            **context,
        )
        self.maybe_sent = maybe_sent
        self.rejected = dict(rejected or {})


class Provider(ABC):
    """Sends batches. Subclasses implement :meth:`send_chunk` and may override the rest."""

    name: str = "base"
    #: How many recipients one provider request can carry.
    max_recipients: int = 1
    #: True when one instance may run :meth:`send` in several threads at once (no
    #: connection or other state kept between calls).
    thread_safe: bool = False
    #: Whether this backend can carry a non-ASCII local part (SMTPUTF8, RFC 6531).
    smtputf8: bool = True

    def open(self) -> None:  # noqa: B027 (an optional hook)
        """Opens a connection to reuse across chunks (SMTP). Default: nothing.

        Raise :class:`ChunkError` (retryable) when the service cannot be reached, and
        :class:`ConfigurationError` when the settings are wrong (bad credentials).
        """

    def close(self) -> None:  # noqa: B027 (an optional hook)
        """Closes what :meth:`open` opened. Always called, even after errors."""

    @abstractmethod
    def send_chunk(self, batch: Batch) -> list[SendResult]:
        """Sends at most :attr:`max_recipients` recipients; one result per recipient, in order.

        Raise :class:`ChunkError` when the provider refused or lost the chunk as a whole.
        """

    def address_problem(self, recipient: Recipient) -> str | None:
        """Why this backend can never send to ``recipient``'s address; ``None`` when it can.

        See :func:`~nurture.mail.messages.header_address`. Override to refuse more.
        """
        try:
            header_address(recipient.email, smtputf8=self.smtputf8)
        except UnsendableRecipient as exc:
            return exc.message
        return None

    def send(self, batch: Batch) -> list[SendResult]:
        """Sends every recipient of ``batch``; one result per recipient, in the batch's order."""
        recipients = batch.recipients
        if not recipients:
            return []
        # An address no message can be written for fails alone, before any request: in
        # a chunk it would make the whole request fail (or, worse, go out to whomever a
        # header parser reads into it).
        refused: dict[int, str] = {}
        for i, recipient in enumerate(recipients):
            problem = self.address_problem(recipient)
            if problem is not None:
                refused[i] = problem
        if refused:
            logger.warning(
                "addresses this backend cannot send to",
                extra={"action": "refuse_address", "provider": self.name, "count": len(refused)},
            )
            kept = [r for i, r in enumerate(recipients) if i not in refused]
            others = iter(self.send(_with(batch, kept)) if kept else [])
            return [
                SendResult(r, Outcome.FAILED, error=refused[i]) if i in refused else next(others)
                for i, r in enumerate(recipients)
            ]
        try:
            self.open()
        except ConfigurationError:
            raise
        except Exception as exc:
            # Nothing left: every recipient simply waits for the next attempt.
            _log_problem(self.name, "open", exc, len(recipients))
            return _unsent(recipients, _as_chunk_error(exc, maybe_sent=False))
        results: list[SendResult] = []
        try:
            for start in range(0, len(recipients), self.max_recipients):
                chunk = recipients[start : start + self.max_recipients]
                try:
                    results.extend(self._send_isolating(batch, chunk))
                except ConfigurationError as exc:
                    if not _went_out(results):
                        raise
                    logger.error(
                        "configuration error after part of a batch went out",
                        extra={"action": "send", "provider": self.name, "error": str(exc)},
                    )
                    rest = recipients[start:]
                    results.extend(_unsent(rest, ChunkError(str(exc), retryable=True)))
                    break
        finally:
            try:
                self.close()
            except Exception as exc:  # closing must never hide the results
                _log_problem(self.name, "close", exc, 0)
        return results

    def reconcile(self, outbox_id: int) -> bool | None:
        """Did the message for ``outbox_id`` leave? ``None`` when this provider cannot tell."""
        return None

    # The loop's machinery ----------------------------------------------------------

    def _send_isolating(self, batch: Batch, chunk: Sequence[Recipient]) -> list[SendResult]:
        """One chunk, isolating refused recipients; always one result per recipient."""
        out: list[SendResult | None] = [None] * len(chunk)
        pending = list(range(len(chunk)))
        # A loop rather than recursion: a provider that names one culprit per answer
        # would otherwise recurse once per bad address.
        while pending:
            whole = len(pending) == len(chunk)
            part = list(chunk) if whole else [chunk[i] for i in pending]
            try:
                results = self.send_chunk(_with(batch, part))
                if len(results) != len(part):
                    raise RuntimeError(
                        f"{self.name} returned {len(results)} results for {len(part)}"
                    )
                if whole:
                    return results  # nearly always: the whole chunk answered for at once
            except ConfigurationError:
                raise
            except Exception as exc:
                error = _as_chunk_error(exc, maybe_sent=True)
                named = bool(error.rejected) and all(0 <= i < len(part) for i in error.rejected)
                if error.retryable or (len(part) == 1 and not named):
                    _log_problem(self.name, "send", exc, len(part))
                    results = _unsent(part, error)
                elif named:
                    logger.info(
                        "chunk refused because of some recipients; resending the others",
                        extra={
                            "action": "isolate",
                            "provider": self.name,
                            "rejected": len(error.rejected),
                            "chunk": len(part),
                        },
                    )
                    for i, reason in error.rejected.items():
                        out[pending[i]] = SendResult(part[i], Outcome.FAILED, error=reason)
                    pending = [p for i, p in enumerate(pending) if i not in error.rejected]
                    continue
                else:
                    # The provider did not say who: halve until each culprit is alone.
                    mid = len(part) // 2
                    left = self._send_isolating(batch, part[:mid])
                    try:
                        right = self._send_isolating(batch, part[mid:])
                    except ConfigurationError as config:
                        if not _went_out(left):
                            raise
                        right = _unsent(part[mid:], ChunkError(str(config), retryable=True))
                    results = left + right
            for i, result in zip(pending, results, strict=True):
                out[i] = result
            pending = []
        return [r for r in out if r is not None]


def _went_out(results: Sequence[SendResult]) -> bool:
    """Whether any of ``results`` was, or may have been, accepted by the provider."""
    return any(r.outcome == Outcome.SENT or r.maybe_sent for r in results)


def _with(batch: Batch, recipients: list[Recipient]) -> Batch:
    return Batch(batch.content, batch.sender, recipients, batch.subject_prefix)


def _as_chunk_error(exc: Exception, *, maybe_sent: bool) -> ChunkError:
    """Any exception from a provider hook, seen as a :class:`ChunkError`.

    ``maybe_sent`` applies to unexpected exceptions only (a bug, an unmapped library
    error): we cannot know whether the request left, so they retry, after reconciling
    when a request may have gone out.
    """
    if isinstance(exc, ChunkError):
        return exc
    if isinstance(exc, DeliveryError):
        return ChunkError(
            exc.message,
            retryable=exc.retryable,
            retry_after=exc.retry_after,
            status=exc.status,
            response=exc.response,
        )
    return ChunkError(f"{type(exc).__name__}: {exc}", retryable=True, maybe_sent=maybe_sent)


def _unsent(recipients: Sequence[Recipient], error: ChunkError) -> list[SendResult]:
    if error.retryable:
        return [
            SendResult(
                r,
                Outcome.RETRY,
                error=error.message,
                retry_after=error.retry_after,
                maybe_sent=error.maybe_sent,
            )
            for r in recipients
        ]
    return [SendResult(r, Outcome.FAILED, error=error.message) for r in recipients]


def _log_problem(provider: str, stage: str, exc: Exception, count: int) -> None:
    level = logging.WARNING if isinstance(exc, DeliveryError) else logging.ERROR
    logger.log(
        level,
        "%s %s: %s",
        provider,
        stage,
        exc,
        exc_info=not isinstance(exc, DeliveryError),
        extra={"action": stage, "provider": provider, "recipients": count},
    )
