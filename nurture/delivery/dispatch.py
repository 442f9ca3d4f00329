"""Dispatch: take due outbox rows, check them, render, hand them to the provider, record.

One pass (:meth:`Dispatcher.dispatch`) repeats, until nothing is due or a stop is
requested (a stop lets the batch in flight finish):

1. in one transaction: take due rows (locked), set aside what must not go now, and
   mark one step's rows ``sending``; committed before anything leaves;
2. send them as one batch: the step's MJML is compiled once and shared by up to 1000
   recipients of one provider request;
3. in one transaction: record each recipient's outcome (sent, refused, retry later,
   unknown) and move the sequences on.

Before a marketing row leaves, dispatch checks again what planning already checked: the
subscriber is still confirmed (an unsubscribe or suppression wins at any time) and still
wants newsletters, the newsletter has not expired, the subscriber is not paused, and it is
inside their local send window (a dispatcher down overnight must not catch up at 3 a.m.).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import secrets
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine

from nurture import metrics
from nurture.campaigns import Catalogue
from nurture.clock import Clock, utcnow
from nurture.delivery import checks, collection, outcomes, sequencing
from nurture.delivery.composing import Composer
from nurture.exceptions import ConfigurationError, NurtureError
from nurture.mail.messages import Batch
from nurture.mail.recipients import RecipientFactory
from nurture.providers.base import Outcome, Provider, SendResult
from nurture.rendering import Renderer
from nurture.settings import Settings
from nurture.store import outbox as outbox_ops
from nurture.store.statuses import OutboxStatus

log = logging.getLogger(__name__)
#: A 429 asking us to wait longer than this ends the pass; the rows wait in the queue.
MAX_INLINE_WAIT = 60.0


@dataclass
class DispatchReport:
    """What one pass did (shared by its worker threads: updated under a lock)."""

    sent: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0
    deferred: int = 0
    unknown: int = 0
    batches: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


@dataclass
class _Prepared:
    """One step's rows marked ``sending``, and what is needed to send them."""

    rows: dict[int, outbox_ops.Claimed]  # empty: everything taken was set aside
    batch: Batch | None  # None when nothing is to be sent
    handled: int
    token: str = ""  # the claim's fencing token: every outcome recorded must match it


class Dispatcher:
    """Sends what is due. One per process; safe beside others on the same database."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        catalogue: Catalogue,
        renderer: Renderer,
        recipients: RecipientFactory,
        provider: Provider,
        *,
        clock: Clock = utcnow,
        sleep: Callable[[float], None] | None = None,
        worker: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.catalogue = catalogue
        self.provider = provider
        self.composer = Composer(settings, catalogue, renderer, recipients)
        self.clock = clock
        self._stop = threading.Event()
        # Waits (a 429, MAX_SEND_RATE) end early on SIGTERM.
        self.sleep = sleep or (lambda seconds: self._stop.wait(seconds) and None)
        self.worker = worker or f"{socket.gethostname()[:24]}:{os.getpid()}:{secrets.token_hex(3)}"
        self.rng = rng or random.Random()
        self._rounds = 0
        self._state = threading.Lock()  # the round counter and the rate limiter
        self._pass = threading.Lock()  # one pass at a time per process
        # One thread at a time uses a provider that keeps a connection (SMTP), send_now too.
        self._provider_lock = threading.Lock()
        self._next_free = 0.0  # monotonic time when MAX_SEND_RATE allows the next send
        self._now_waiting: set[int] = set()  # rows handed to send_now, not taken yet
        self._now_sender = False  # a thread is sending them
        # Read once: settings properties parse on every access, and this is per row.
        self._default_window, self._practice_zone = settings.window, settings.zone
        self._give_up = timedelta(hours=settings.retry_give_up_hours)

    # -- control -------------------------------------------------------------------

    def request_stop(self) -> None:
        """Finish the batch in flight, then stop (SIGTERM)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- passes --------------------------------------------------------------------

    def dispatch(self, *, limit: int | None = None) -> DispatchReport:
        """Sends due rows until none is left (or about ``limit`` rows were handled).

        With a thread-safe provider, DISPATCH_WORKERS threads run the loop side by side,
        so one batch's HTTP round trip overlaps the next batch's database and rendering
        work. An exception in any of them (a refused API key) is raised here.
        """
        report = DispatchReport()
        with self._pass, collection.fewer_collections():
            workers = self.settings.dispatch_workers
            if not self.provider.thread_safe or limit is not None:
                workers = 1
            if workers == 1:
                self._loop(0, limit, report)
                return report
            errors: list[BaseException] = []

            def run(index: int) -> None:
                try:
                    self._loop(index, None, report)
                except BaseException as exc:  # re-raised below, in the caller's thread
                    errors.append(exc)
                    self._stop.set()  # the other workers stop after their batch

            threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if errors:
                if not isinstance(errors[0], KeyboardInterrupt):
                    self._stop.clear()  # a failed pass is not a shutdown
                raise errors[0]
        return report

    def send_now(self, outbox_id: int) -> DispatchReport:
        """Sends one queued row at once (the confirmation email after a sign-up).

        Takes no pass lock: taking rows is atomic like any other, so it never waits
        behind a long newsletter pass. A call made while another thread sends leaves its
        row to that thread and returns: eight sign-ups at once cost one batch, not eight.
        """
        report = DispatchReport()
        with self._state:
            self._now_waiting.add(outbox_id)
            if self._now_sender:
                return report  # a thread is sending them already: it takes this one too
            self._now_sender = True
        try:
            while True:
                with self._state:
                    ids = sorted(self._now_waiting)
                    self._now_waiting.clear()
                    if not ids:
                        self._now_sender = False
                        return report
                self._send_these(ids, report)
        except BaseException:
            with self._state:
                self._now_sender = False  # the rows wait in the queue for the next pass
            raise

    def _send_these(self, ids: list[int], report: DispatchReport) -> None:
        """Sends the queued rows among ``ids``, a step at a time (one batch per step)."""
        left = len(ids)
        while left > 0:
            prepared = self._prepare(99, left, report, only=ids)
            if prepared is None:
                return
            left -= prepared.handled
            self._deliver(prepared, report)

    def _loop(self, index: int, limit: int | None, report: DispatchReport) -> None:
        handled = 0
        while not self._stop.is_set() and (limit is None or handled < limit):
            size = self._batch_size()
            if limit is not None:
                size = min(size, limit - handled)
            prepared = self._prepare(index, size, report)
            if prepared is None:
                break
            handled += prepared.handled
            wait = self._deliver(prepared, report)
            if wait:
                if wait > MAX_INLINE_WAIT or self._stop.is_set():
                    break
                self.sleep(wait)

    def _token(self, index: int) -> str:
        with self._state:
            self._rounds += 1
            return f"{self.worker}:{index}:{self._rounds}"

    def _batch_size(self) -> int:
        size = self.settings.dispatch_batch_size
        if self.settings.max_send_rate:
            size = max(1, min(size, int(self.settings.max_send_rate)))
        return size

    # -- 1. take, check, mark sending ------------------------------------------------

    def _prepare(
        self, index: int, size: int, report: DispatchReport, *, only: Sequence[int] | None = None
    ) -> _Prepared | None:
        """One transaction: take due rows, set aside what must not go now, and mark one
        step's rows ``sending``, committed before anything leaves (one request carries one
        step: rows of other steps stay queued for the next round). ``None``: nothing due."""
        now, token = self.clock(), self._token(index)
        lease = timedelta(seconds=self.settings.lease_seconds)
        links = self.composer.links_wanted(now)  # signed ahead of time, if still good
        with self.engine.begin() as conn:
            rows = outbox_ops.take(
                conn, now=now, limit=size, only_ids=only, give_up=self._give_up, links=links
            )
            if not rows:
                return None
            sendable = self._set_aside(conn, rows, now, report)
            if not sendable:
                return _Prepared({}, None, len(rows))
            first = sendable[0]
            group = (first.kind, first.campaign, first.step)
            members = {r.id: r for r in sendable if (r.kind, r.campaign, r.step) == group}
            handled = len(rows) - len(sendable) + len(members)
            try:
                content, sender, fallback = self.composer.content(group)
            except NurtureError as exc:
                # A content problem (a broken file deployed): keep the rows, retry later.
                log.error("cannot render", extra={"campaign": group[1], "step": group[2]})
                retry = dict.fromkeys(members, None)
                self._retry(conn, members, retry, str(exc), now, report, expect=OutboxStatus.QUEUED)
                return _Prepared({}, None, handled)
            outbox_ops.start_sending(conn, list(members), token=token, now=now, lease=lease)
        # Each recipient's part (signed links): most of the work, done outside the lock.
        try:
            recipients = self.composer.recipients_for(group, list(members.values()), fallback, now)
        except BaseException:
            self._give_back(members, token, "not sent: the batch could not be built")
            raise
        return _Prepared(members, Batch(content, sender, recipients), handled, token)

    def _give_back(self, rows: dict[int, outbox_ops.Claimed], token: str, error: str) -> None:
        """Rows marked ``sending`` that never left go straight back to the queue."""
        with self.engine.begin() as conn:
            outbox_ops.give_back(conn, list(rows), token=token, error=error, now=self.clock())

    def _set_aside(
        self,
        conn: Connection,
        rows: Sequence[outbox_ops.Claimed],
        now: datetime,
        report: DispatchReport,
    ) -> list[outbox_ops.Claimed]:
        """Cancels what must never go and defers what must not go yet; returns the rest."""
        verdicts = checks.sort(rows, now, self.catalogue, self._default_window, self._practice_zone)
        cancel, defer = verdicts.cancel, verdicts.defer
        for reason, cancelled in cancel.items():
            count = outbox_ops.cancel(conn, [r.id for r in cancelled], now=now, reason=reason)
            report.add(cancelled=count)
            metrics.sends.labels(OutboxStatus.CANCELLED, reason).inc(count)
        outcomes.vanished(conn, cancel.get("no such step", []), now)
        outbox_ops.requeue(conn, defer, now=now, expect=OutboxStatus.QUEUED)
        report.add(deferred=len(defer))
        return verdicts.sendable

    # -- 2. send -------------------------------------------------------------------

    def _deliver(self, prepared: _Prepared, report: DispatchReport) -> float:
        """Sends a prepared batch and records every outcome; returns seconds to wait."""
        if not prepared.rows:
            return 0.0
        self._respect_rate(len(prepared.rows))
        assert prepared.batch is not None
        try:
            with self.provider_turn():
                results = self.provider.send(prepared.batch)
        except ConfigurationError:
            # A refused API key: the provider raises it only before anything was handed
            # over, so the rows go straight back to the queue, and the pass stops loudly.
            self._give_back(prepared.rows, prepared.token, "not sent: provider error")
            raise
        report.add(batches=1)
        return self._record(prepared.rows, results, report, prepared.token)

    @contextlib.contextmanager
    def provider_turn(self) -> Iterator[None]:
        """Holds the provider for one request when it keeps a connection (SMTP): one
        thread at a time, dispatch, confirmations and the studio's test sends alike."""
        if self.provider.thread_safe:
            yield
            return
        with self._provider_lock:
            yield

    def _respect_rate(self, count: int) -> None:
        """MAX_SEND_RATE across this dispatcher's threads: each reserves its slot first."""
        rate = self.settings.max_send_rate
        if not rate:
            return
        with self._state:
            now = time.monotonic()
            start = max(now, self._next_free)
            self._next_free = start + count / rate
        if start > now:
            self.sleep(start - now)

    # -- 3. record -------------------------------------------------------------------

    def _record(
        self,
        rows: dict[int, outbox_ops.Claimed],
        results: list[SendResult],
        report: DispatchReport,
        token: str,
    ) -> float:
        """Records a request's outcomes under its claim ``token`` (the fencing token).

        A success is recorded whatever the claim: the email left. Every other outcome
        applies only to rows the claim still holds; a claim that outlived its lease may
        find its rows requeued and taken by another dispatcher, which it must not touch.
        """
        now = self.clock()
        sent: dict[str | None, list[int]] = defaultdict(list)
        refused: dict[int, str] = {}
        retry: dict[int, float | None] = {}
        unknown: dict[int, str] = {}
        reason = "retry"
        sent_outcome, refused_outcome = Outcome.SENT, Outcome.FAILED  # read once, not per row
        for result in results:
            row_id = result.recipient.outbox_id
            assert row_id is not None, "every dispatched recipient carries its outbox id"
            if result.outcome == sent_outcome:
                sent[result.message_id].append(row_id)
            elif result.outcome == refused_outcome:
                refused[row_id] = result.error or "refused"
                metrics.provider_errors.labels(self.provider.name, "refused").inc()
            elif result.maybe_sent:
                # The request may have been accepted before its answer was lost: never
                # resend blindly; see nurture.delivery.reconciliation.
                unknown[row_id] = result.error or "no answer from the provider"
                metrics.provider_errors.labels(self.provider.name, "no_answer").inc()
            else:
                retry[row_id] = result.retry_after
                reason = result.error or reason
                metrics.provider_errors.labels(self.provider.name, "retryable").inc()
        in_flight = (OutboxStatus.SENDING, OutboxStatus.UNKNOWN)
        covered = rows.keys() <= {r.recipient.outbox_id for r in results}
        with self.engine.begin() as conn:
            if covered:  # first, as expire_leases locks a claim before its rows (deadlocks)
                outbox_ops.release(conn, token)  # else the lease ends the rows left sending
            count = 0
            for message_id, ids in sent.items():
                count += outbox_ops.mark_group_sent(conn, ids, message_id=message_id, now=now)
            went = (rows[i] for ids in sent.values() for i in ids)
            outcomes.moved_on(conn, self.catalogue, went, now)
            still = outbox_ops.held(conn, [*refused, *retry, *unknown], token=token)
            refused = {i: e for i, e in refused.items() if i in still}
            retry = {i: a for i, a in retry.items() if i in still}
            unknown = {i: e for i, e in unknown.items() if i in still}
            failed = outbox_ops.mark_failed(conn, refused, now=now, expect=in_flight, token=token)
            outcomes.refused(conn, [rows[i] for i in refused], now)
            self._retry(
                conn, rows, retry, reason, now, report, expect=OutboxStatus.SENDING, token=token
            )
            outbox_ops.mark_unknown(conn, unknown, now=now, token=token)
        report.add(sent=count, failed=failed, unknown=len(unknown))
        metrics.sends.labels(OutboxStatus.SENT, "provider").inc(count)
        if failed:
            metrics.sends.labels(OutboxStatus.FAILED, "refused").inc(failed)
        return max((after for after in retry.values() if after), default=0.0)

    def _retry(
        self,
        conn: Connection,
        rows: dict[int, outbox_ops.Claimed],
        retry: dict[int, float | None],
        reason: str,
        now: datetime,
        report: DispatchReport,
        *,
        expect: str,
        token: str | None = None,
    ) -> None:
        """Back to the queue after the provider's own wait or a backoff with jitter.

        Retries never count against a row: a 429 storm or an outage of hours only
        delays it. A row still undelivered RETRY_GIVE_UP_HOURS after it was planned
        fails, and its sequence moves on rather than stopping.
        """
        due: dict[int, datetime] = {}
        gave_up: dict[int, str] = {}
        for row_id, after in retry.items():
            row = rows[row_id]
            if row.stale:
                gave_up[row_id] = f"gave up after {self.settings.retry_give_up_hours:g} h: {reason}"
                continue
            delay = after or sequencing.retry_delay(
                row.attempts + 1, base=self.settings.retry_base_seconds, rng=self.rng
            )
            due[row_id] = now + timedelta(seconds=delay)
        count_attempt = expect == OutboxStatus.QUEUED  # start_sending counted the others
        requeued = outbox_ops.requeue(
            conn,
            due,
            now=now,
            expect=expect,
            error=reason,
            count_attempt=count_attempt,
            token=token,
        )
        failed = outbox_ops.mark_failed(conn, gave_up, now=now, expect=(expect,), token=token)
        outcomes.moved_on(conn, self.catalogue, [rows[i] for i in gave_up], now)
        report.add(retried=requeued, failed=failed)
        metrics.sends.labels(Outcome.RETRY, "provider").inc(requeued)
