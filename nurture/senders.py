"""Sender processes: the per-recipient work of a batch, off the dispatcher's GIL.

With DISPATCH_PROCESSES > 0, the dispatcher keeps the database work (taking rows,
marking them sending, recording outcomes) and hands each batch's rows to a pool of
processes that compose the recipients, build the provider request and send it. A
million-recipient newsletter then uses both cores of a small machine. Each process has
its own provider (and connection); the rows it is given are already ``sending``, so a
process that dies mid-batch leaves them to reconciliation like any lost request.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from typing import NamedTuple

from nurture.composing import Composer, Group
from nurture.providers.base import Provider, SendResult
from nurture.settings import Settings
from nurture.store.outbox import Claimed


class Outcome(NamedTuple):
    """One recipient's result, small enough to travel between processes."""

    outbox_id: int
    outcome: str
    message_id: str | None
    error: str | None
    retry_after: float | None
    maybe_sent: bool

    @classmethod
    def of(cls, result: SendResult) -> Outcome:
        assert result.recipient.outbox_id is not None, "dispatched recipients carry their id"
        return cls(
            result.recipient.outbox_id,
            result.outcome,
            result.message_id,
            result.error,
            result.retry_after,
            result.maybe_sent,
        )


class SenderPool:
    """A pool of sender processes, started once and reused by every pass."""

    def __init__(self, settings: Settings, processes: int) -> None:
        # "spawn": the service runs threads (web server, scheduler); forking them is unsafe.
        self._executor = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(settings,),
        )

    def send(self, group: Group, rows: Sequence[Claimed], now: datetime) -> list[Outcome]:
        """Composes and sends one batch in a sender process; raises what the provider raised."""
        return self._executor.submit(_send, group, list(rows), now).result()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


_composer: Composer | None = None
_provider: Provider | None = None


def _start(settings: Settings) -> None:
    """Builds this process's composer and provider, once."""
    global _composer, _provider
    from nurture.campaigns import load_catalogue
    from nurture.providers import make_provider
    from nurture.recipients import RecipientFactory
    from nurture.rendering import Renderer
    from nurture.tokens import Tokens

    catalogue = load_catalogue(settings)
    _composer = Composer(
        settings,
        catalogue,
        Renderer(settings, catalogue),
        RecipientFactory(settings, Tokens.from_settings(settings)),
    )
    _provider = make_provider(settings)


def _send(group: Group, rows: list[Claimed], now: datetime) -> list[Outcome]:
    assert _composer is not None and _provider is not None, "initialised by _start"
    batch = _composer.batch(group, rows, now)
    return [Outcome.of(result) for result in _provider.send(batch)]
