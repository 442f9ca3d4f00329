"""SendGrid's Event Webhook for the fake: signed events for every accepted message.

:class:`EventPoster` watches a :class:`~nurture.testing.sendgrid.server.FakeSendGrid`
(``record="full"``) and, for each recipient of each accepted request, posts a
``processed`` event carrying the request's ``custom_args`` (our outbox id), signed with
a :class:`~nurture.testing.webhook_signing.WebhookSigner`, as SendGrid does. Like
SendGrid it retries a batch the receiver did not take (down, or answering 5xx), so a
webhook that is briefly down only delays the events. ``paused`` holds events back, to
play a webhook outage.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from nurture.testing.webhook_signing import WebhookSigner, make_event, post_events

if TYPE_CHECKING:
    from nurture.testing.sendgrid.server import FakeSendGrid

#: Events per signed POST (SendGrid batches up to a few thousand).
BATCH = 1000


class EventPoster:
    """Posts signed ``processed`` events for what ``fake`` accepted, in a daemon thread.

    ``url``: the receiver (``BASE/webhooks/sendgrid``). ``interval``: seconds between
    looks at the fake's ledger. :attr:`posted` counts the events the receiver took.
    """

    def __init__(
        self,
        fake: FakeSendGrid,
        url: str,
        signer: WebhookSigner | None = None,
        *,
        interval: float = 0.2,
    ) -> None:
        self.fake = fake
        self.url = url
        self.signer = signer or WebhookSigner()
        self.interval = interval
        self.paused = threading.Event()
        self.posted = 0
        self._seen = 0  # accepted requests already turned into events
        self._pending: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> EventPoster:
        """Starts posting in a daemon thread; returns ``self``."""
        self._thread = threading.Thread(target=self._run, name="fake-events", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops posting; events not yet taken are dropped."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def backlog(self) -> int:
        """Events made but not yet taken by the receiver."""
        return len(self._pending)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            accepted = self.fake.accepted
            for record in accepted[self._seen :]:
                if record.body is not None and not record.sandbox:
                    self._pending.extend(_events(record.body, record.message_id))
            self._seen = len(accepted)
            if not self.paused.is_set():
                self._flush()

    def _flush(self) -> None:
        import httpx

        while self._pending and not self._stop.is_set():
            batch = self._pending[:BATCH]
            try:
                response = post_events(self.url, batch, self.signer)
            except httpx.HTTPError:
                return  # down: SendGrid tries again later
            if response.status_code >= 300:
                return
            del self._pending[: len(batch)]
            self.posted += len(batch)


def _events(body: dict[str, Any], message_id: str) -> list[dict[str, Any]]:
    """One ``processed`` event per recipient of an accepted body."""
    shared = body.get("custom_args") or {}
    events = []
    for item in body["personalizations"]:
        args = {**shared, **(item.get("custom_args") or {})}
        for party in item.get("to") or ():
            event = make_event("processed", party["email"], **args)
            event["sg_message_id"] = f"{message_id}.filterdrecv-0001.0.0"
            events.append(event)
    return events
