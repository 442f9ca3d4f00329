"""Dispatch: claim due outbox rows, render them, hand them to the provider, record.

One pass (:meth:`Dispatcher.dispatch`) repeats claim -> check -> render -> mark
``sending`` (committed) -> send -> record until nothing is due or a stop is requested;
a stop lets the batch in flight finish. Rows are grouped by step so each step's MJML
is compiled once and shared by up to 1000 recipients of one provider request.

Before a marketing row leaves, dispatch checks again what planning already checked:
the subscriber is still confirmed (an unsubscribe or suppression wins at any time),
the newsletter has not expired, the subscriber is not paused, and it is inside their
local send window (a dispatcher that was down overnight must not catch up at 3 a.m.).
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, select

from nurture import metrics, sequencing
from nurture.campaigns import Catalogue
from nurture.exceptions import ConfigurationError, NurtureError
from nurture.messages import Batch, Content, Recipient, Sender
from nurture.providers.base import Provider, SendResult
from nurture.recipients import RecipientFactory
from nurture.rendering import Renderer
from nurture.settings import Settings
from nurture.store import enrolments as enrolment_ops
from nurture.store import outbox as outbox_ops
from nurture.store.schema import outbox

log = logging.getLogger(__name__)
NEWSLETTER_FALLBACK = "there"
#: A 429 asking us to wait longer than this ends the pass; the rows wait in the queue.
MAX_INLINE_WAIT = 60.0


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class DispatchReport:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0
    deferred: int = 0
    batches: int = 0
    requests: int = 0
    reconciled: int = 0
    unknown: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class _Prepared:
    """One step's rows marked ``sending`` under ``token``, and the batch to send them."""

    token: str
    group: tuple[str, str, str]  # (kind, campaign, step)
    rows: dict[int, outbox_ops.Claimed]
    batch: Batch | None  # None: everything taken was set aside
    handled: int


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
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        worker: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.catalogue = catalogue
        self.renderer = renderer
        self.recipients = recipients
        self.provider = provider
        self.clock = clock
        self.sleep = sleep
        self.worker = worker or f"{socket.gethostname()[:24]}:{os.getpid()}:{secrets.token_hex(3)}"
        self._rounds = 0
        # Read once: settings properties parse on every access, and this is per row.
        self._default_window = settings.window
        self._practice_zone = settings.zone
        self.rng = rng or random.Random()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one pass at a time per process (jobs, send_now)
        self._next_free = 0.0  # monotonic time when MAX_SEND_RATE allows the next send

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

        With a thread-safe provider, DISPATCH_WORKERS threads run the loop side by side
        under separate claims, so one batch's HTTP round trip overlaps the next batch's
        database and rendering work.
        """
        report = DispatchReport()
        with self._lock:
            workers = self.settings.dispatch_workers
            if not getattr(self.provider, "thread_safe", False) or limit is not None:
                workers = 1
            if workers == 1:
                self._loop(0, limit, report)
                return report
            threads = [
                threading.Thread(target=self._loop, args=(i, None, report), daemon=True)
                for i in range(workers)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        return report

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
        self._rounds += 1
        return f"{self.worker}:{index}:{self._rounds}"

    def send_now(self, outbox_id: int) -> DispatchReport:
        """Sends one queued row at once (the confirmation email after a sign-up).

        Takes no pass lock: taking rows is atomic like any other, so it never waits
        behind a long newsletter pass.
        """
        report = DispatchReport()
        prepared = self._prepare(99, 1, report, only_id=outbox_id)
        if prepared is not None:
            self._deliver(prepared, report)
        return report

    def housekeeping(self) -> DispatchReport:
        """Expired leases back to the queue, and rows of unknown outcome reconciled.

        The policy for a row whose request may have left before the process died
        (``unknown``): ask the provider first (the folder can tell); with SendGrid,
        wait for its Event Webhook, which marks the row sent from the ``outbox_id`` in
        ``custom_args``; when UNKNOWN_RECONCILE_MINUTES pass without any event, the
        request never reached SendGrid, and the row is queued again. A provider with
        no evidence at all (SMTP, console, SendGrid without a webhook key) never
        resends blindly: the row fails with "outcome unknown" for the operator.
        """
        report = DispatchReport()
        now = self.clock()
        window = timedelta(minutes=self.settings.unknown_reconcile_minutes)
        has_events = self.settings.delivery == "sendgrid" and bool(
            self.settings.sendgrid_webhook_public_key
        )
        with self.engine.begin() as conn:
            outbox_ops.expire_leases(conn, now=now)
            for row_id, since, _attempts in outbox_ops.unknown_rows(conn):
                verdict = self.provider.reconcile(row_id)
                if verdict is True:
                    report.reconciled += reconcile_sent(conn, self.catalogue, row_id, None, now)
                elif verdict is False:
                    outbox_ops.requeue(conn, {row_id: now}, now=now, error="never left: resend")
                elif now - since >= window:
                    if has_events:
                        outbox_ops.requeue(
                            conn, {row_id: now}, now=now, error="no provider event: resend"
                        )
                    else:
                        outbox_ops.mark_failed(
                            conn, {row_id: "outcome unknown; not resent"}, now=now
                        )
        return report

    # -- one batch -----------------------------------------------------------------

    @property
    def _lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_seconds)

    def _batch_size(self) -> int:
        size = self.settings.dispatch_batch_size
        if self.settings.max_send_rate:
            size = max(1, min(size, int(self.settings.max_send_rate)))
        return size

    def _prepare(
        self, index: int, size: int, report: DispatchReport, *, only_id: int | None = None
    ) -> _Prepared | None:
        """One transaction: take due rows, set aside what must not go now, and mark one
        step's rows ``sending`` (committed before anything leaves). ``None``: nothing due.

        Rows of other steps taken along stay queued, untouched, for the next round: one
        provider request carries one step's content.
        """
        now = self.clock()
        token = self._token(index)
        with self.engine.begin() as conn:
            rows = outbox_ops.take(conn, now=now, limit=size, only_id=only_id)
            if not rows:
                return None
            sendable, cancel, defer = self._triage(rows, now)
            for reason, ids in cancel.items():
                report.cancelled += outbox_ops.cancel(conn, ids, now=now, reason=reason)
                metrics.sends.labels("cancelled", reason).inc(len(ids))
            outbox_ops.requeue(conn, defer, now=now)
            report.deferred += len(defer)
            set_aside = len(rows) - len(sendable)
            if not sendable:
                return _Prepared(token, ("", "", ""), {}, None, set_aside)
            first = sendable[0]
            group = (first.kind, first.campaign, first.step)
            members = {r.id: r for r in sendable if (r.kind, r.campaign, r.step) == group}
            try:
                content, sender, fallback = self._content(*group)
            except NurtureError as exc:
                # A content problem (a broken file deployed): keep the rows, retry later.
                log.error("cannot render", extra={"campaign": group[1], "step": group[2]})
                retry = dict.fromkeys(members, None)
                self._requeue_retries(conn, members, retry, str(exc), report, now, counted=False)
                return _Prepared(token, group, {}, None, set_aside + len(members))
            recipients = [self._recipient(row, fallback, now) for row in members.values()]
            outbox_ops.start_sending(conn, list(members), token=token, now=now, lease=self._lease)
        batch = Batch(content, sender, recipients)
        return _Prepared(token, group, members, batch, set_aside + len(members))

    def _deliver(self, prepared: _Prepared, report: DispatchReport) -> float:
        """Sends a prepared batch and records every outcome; returns seconds to wait."""
        if prepared.batch is None:
            return 0.0
        self._respect_rate(len(prepared.batch.recipients))
        try:
            results = self.provider.send(prepared.batch)
        except ConfigurationError:
            # Nothing left (a refused API key is answered before any mail is taken):
            # the rows go back to the queue and the pass stops loudly.
            now = self.clock()
            with self.engine.begin() as conn:
                outbox_ops.requeue(
                    conn, dict.fromkeys(prepared.rows, now), now=now, error="provider settings"
                )
            raise
        report.batches += 1
        return self._record(prepared.token, prepared.group, prepared.rows, results, report)

    def _triage(
        self, rows: Sequence[outbox_ops.Claimed], now: datetime
    ) -> tuple[list[outbox_ops.Claimed], dict[str, list[int]], dict[int, datetime]]:
        sendable: list[outbox_ops.Claimed] = []
        cancel: dict[str, list[int]] = defaultdict(list)
        defer: dict[int, datetime] = {}
        practice = self._practice_zone
        # Rows of a batch share few zones: the window verdict is computed once per zone.
        opens: dict[tuple[str | None, sequencing.Window], datetime] = {}
        for row in rows:
            marketing = row.kind in outbox_ops.MARKETING
            if row.email is None:
                cancel["no subscriber"].append(row.id)
            elif row.expires_at is not None and now >= row.expires_at:
                cancel["expired"].append(row.id)
            elif marketing and row.status != "confirmed":
                cancel["not subscribed"].append(row.id)
            elif not self._known(row):
                cancel["no such step"].append(row.id)
            elif marketing:
                window = self._window(row)
                if row.paused_until is not None and row.paused_until > now:
                    zone = sequencing.zone_for(row.timezone, practice)
                    at = sequencing.send_time(
                        now, zone=zone, window=window, paused_until=row.paused_until
                    )
                else:
                    key = (row.timezone, window)
                    at = opens.get(key) or opens.setdefault(
                        key,
                        sequencing.into_window(
                            now, sequencing.zone_for(row.timezone, practice), window
                        ),
                    )
                if at > now:
                    defer[row.id] = at
                else:
                    sendable.append(row)
            else:
                sendable.append(row)
        return sendable, cancel, defer

    def _known(self, row: outbox_ops.Claimed) -> bool:
        if row.campaign == "newsletters" and row.kind == "newsletter":
            return row.step in self.catalogue.newsletters
        campaign = self.catalogue.campaigns.get(row.campaign)
        if campaign is None:
            return False
        return row.kind == "confirmation" or any(s.slug == row.step for s in campaign.steps)

    def _window(self, row: outbox_ops.Claimed) -> sequencing.Window:
        campaign = self.catalogue.campaigns.get(row.campaign)
        if row.kind == "sequence" and campaign is not None and campaign.send_window:
            return campaign.send_window
        return self._default_window

    def _content(self, kind: str, campaign: str, step: str) -> tuple[Content, Sender, str]:
        if kind == "confirmation":
            content = self.renderer.compile_confirmation(campaign)
        else:
            content = self.renderer.compile(campaign, step)
        found = self.catalogue.campaigns.get(campaign)
        from_name = found.from_name if found and found.from_name else self.settings.from_name
        fallback = found.first_name_fallback if found else NEWSLETTER_FALLBACK
        sender = Sender(self.settings.from_email, from_name, self.settings.reply_to)
        return content, sender, fallback

    def _recipient(self, row: outbox_ops.Claimed, fallback: str, now: datetime) -> Recipient:
        assert row.email is not None and row.public_id is not None
        if row.kind == "confirmation":
            return self.recipients.confirmation(
                email=row.email,
                public_id=row.public_id,
                first_name=row.first_name,
                outbox_id=row.id,
                now=now,
            )
        return self.recipients.marketing(
            email=row.email,
            public_id=row.public_id,
            first_name=row.first_name,
            fallback=fallback,
            outbox_id=row.id,
            now=now,
        )

    def _record(
        self,
        token: str,
        group: tuple[str, str, str],
        by_id: dict[int, outbox_ops.Claimed],
        results: list[SendResult],
        report: DispatchReport,
    ) -> float:
        now = self.clock()
        sent: dict[int, str | None] = {}
        failed: dict[int, str] = {}
        retry: dict[int, float | None] = {}
        unknown: dict[int, str] = {}
        reasons: list[str] = []
        for result in results:
            row_id = result.recipient.outbox_id
            assert row_id is not None, "every dispatched recipient carries its outbox id"
            if result.outcome == "sent":
                sent[row_id] = result.message_id
            elif result.outcome == "retry" and result.maybe_sent:
                # The request may have been accepted before its answer was lost: never
                # resend blindly; housekeeping reconciles it (see ``housekeeping``).
                unknown[row_id] = result.error or "no answer from the provider"
                metrics.provider_errors.labels(self.provider.name, "no_answer").inc()
            elif result.outcome == "failed":
                failed[row_id] = result.error or "refused"
                metrics.provider_errors.labels(self.provider.name, "refused").inc()
            else:
                retry[row_id] = result.retry_after
                reasons.append(result.error or "retry")
                metrics.provider_errors.labels(self.provider.name, "retryable").inc()
        kind, campaign, step = group
        with self.engine.begin() as conn:
            # Failures first, so that "everything still sending" below is exactly the sent.
            outbox_ops.mark_failed(conn, failed, now=now)
            _stop_failed_sequences(conn, by_id, failed, now)
            if retry:
                self._requeue_retries(conn, by_id, retry, reasons[0], report, now)
            outbox_ops.mark_unknown(conn, unknown, now=now)
            message_ids = set(sent.values())
            if len(message_ids) == 1:
                count = outbox_ops.mark_group_sent(
                    conn,
                    token=token,
                    kind=kind,
                    campaign=campaign,
                    step=step,
                    message_id=message_ids.pop(),
                    now=now,
                )
            else:
                count = outbox_ops.mark_sent(conn, sent, now=now)
            advance_sequences(conn, self.catalogue, [by_id[i] for i in sent], now)
        report.sent += count
        report.failed += len(failed)
        report.unknown += len(unknown)
        metrics.sends.labels("sent", kind).inc(count)
        if failed:
            metrics.sends.labels("failed", "refused").inc(len(failed))
        return max((after for after in retry.values() if after), default=0.0)

    def _requeue_retries(
        self,
        conn: Connection,
        by_id: dict[int, outbox_ops.Claimed],
        retry: dict[int, float | None],
        reason: str,
        report: DispatchReport,
        now: datetime,
        *,
        counted: bool = True,
    ) -> None:
        """Backoff with jitter, or the provider's own wait; failed after MAX_ATTEMPTS.

        ``counted``: the attempt was already counted when the rows were marked
        ``sending``; otherwise (nothing was sent) it is counted here.
        """
        due: dict[int, datetime] = {}
        failed: dict[int, str] = {}
        for row_id, after in retry.items():
            attempts = by_id[row_id].attempts + 1  # ``take`` read it before this attempt
            if attempts >= self.settings.max_attempts:
                failed[row_id] = f"gave up after {attempts} attempts: {reason}"
                continue
            delay = after or sequencing.retry_delay(
                attempts, base=self.settings.retry_base_seconds, rng=self.rng
            )
            due[row_id] = now + timedelta(seconds=delay)
        outbox_ops.requeue(conn, due, now=now, error=reason, count_attempt=not counted)
        outbox_ops.mark_failed(conn, failed, now=now)
        _stop_failed_sequences(conn, by_id, failed, now)
        report.retried += len(due)
        report.failed += len(failed)
        metrics.sends.labels("retry", "provider").inc(len(due))

    def _respect_rate(self, count: int) -> None:
        rate = self.settings.max_send_rate
        if not rate:
            return
        now = time.monotonic()
        start = max(now, self._next_free)
        if start > now:
            self.sleep(start - now)
        self._next_free = start + count / rate


def _stop_failed_sequences(
    conn: Connection, by_id: dict[int, outbox_ops.Claimed], failed: dict[int, str], now: datetime
) -> None:
    groups: dict[str, list[int]] = defaultdict(list)
    for row_id in failed:
        row = by_id[row_id]
        if row.kind == "sequence" and row.subscriber_id is not None:
            groups[row.campaign].append(row.subscriber_id)
    for campaign, subscriber_ids in groups.items():
        enrolment_ops.stop_for(conn, campaign=campaign, subscriber_ids=subscriber_ids, now=now)


def advance_sequences(
    conn: Connection,
    catalogue: Catalogue,
    rows: Sequence[outbox_ops.Claimed],
    sent_at: datetime,
) -> None:
    """Moves each sent sequence step's enrolment on to its next step (or completes it)."""
    by_step: dict[tuple[str, str], list[int]] = defaultdict(list)
    for row in rows:
        if row.kind == "sequence" and row.subscriber_id is not None:
            by_step[(row.campaign, row.step)].append(row.subscriber_id)
    for (slug, step), subscriber_ids in by_step.items():
        campaign = catalogue.campaigns.get(slug)
        if campaign is None:
            continue
        index = campaign.index_of(step)
        delays = [s.delay for s in campaign.steps]
        enrolment_ops.advance(
            conn,
            campaign=slug,
            step_index=index,
            subscriber_ids=subscriber_ids,
            sent_at=sent_at,
            next_due=sequencing.next_step_due(sent_at, delays, index + 1),
        )


def reconcile_sent(
    conn: Connection,
    catalogue: Catalogue,
    outbox_id: int,
    message_id: str | None,
    sent_at: datetime,
) -> int:
    """Evidence that a row left (a provider event, the folder): mark it sent, move on.

    Only a row still ``sending`` or ``unknown`` changes, so a second report of the same
    send (a replayed webhook, an event after the dispatcher recorded it) is a no-op.
    """
    row = conn.execute(
        select(outbox.c.subscriber_id, outbox.c.kind, outbox.c.campaign, outbox.c.step).where(
            outbox.c.id == outbox_id,
            outbox.c.status.in_((outbox_ops.SENDING, outbox_ops.UNKNOWN)),
        )
    ).first()
    if row is None:
        return 0
    count = outbox_ops.mark_sent(conn, {outbox_id: message_id}, now=sent_at)
    claimed = outbox_ops.Claimed(
        outbox_id, row.subscriber_id, row.kind, row.campaign, row.step,
        0, None, None, None, None, None, None, None,
    )  # fmt: skip
    advance_sequences(conn, catalogue, [claimed], sent_at)
    metrics.sends.labels("sent", "reconciled").inc(count)
    return count
