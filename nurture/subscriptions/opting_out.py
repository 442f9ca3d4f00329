"""Leaving, coming back and choosing: unsubscribe, undo, and the preference centre.

A part of :class:`~nurture.subscriptions.service.Subscriptions`, kept in its own
module so that each reads in one sitting; the rules are in that module's docstring.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, Row

from nurture.campaigns import Catalogue
from nurture.exceptions import SubscriptionError
from nurture.mail.tokens import Tokens
from nurture.settings import Settings
from nurture.store import consents as consent_ops
from nurture.store import enrolments as enrolment_ops
from nurture.store import subscriber_outbox as mail_ops
from nurture.store import subscribers as subscriber_ops
from nurture.store import suppressions as suppression_ops
from nurture.store.statuses import SubscriberStatus
from nurture.subscriptions import preferences as prefs
from nurture.subscriptions.validation import lookup_address

log = logging.getLogger("nurture.subscriptions.service")


class OptingOut:
    """Unsubscribe, undo and preferences; mixed into ``Subscriptions``."""

    settings: Settings
    engine: Engine
    tokens: Tokens
    catalogue: Catalogue

    if TYPE_CHECKING:

        def _queue_confirmation(
            self, conn: Connection, row: Row[Any], campaign: str, now: datetime
        ) -> int | None: ...

        def _confirmation_campaign(self, row: Row[Any]) -> str: ...

    # Unsubscribe ------------------------------------------------------------------

    def unsubscribe(self, token: str, *, channel: str, now: datetime) -> bool:
        """Unsubscribes from everything at once; ``True`` when something changed.

        ``channel`` is ``link``, ``one_click``, ``mailto`` or ``preferences``. In one
        transaction: status unsubscribed, every active enrolment stopped, every queued or
        claimed outbox row cancelled, the address suppressed, a withdrawal recorded.
        Idempotent; an erased subscriber's token succeeds (the address is suppressed).
        """
        public_id = self.tokens.read("unsubscribe", token, now=now)
        with self.engine.begin() as conn:
            row = subscriber_ops.by_public_id(conn, public_id, for_update=True)
            if row is None:
                return False
            return self.withdraw(conn, row, channel=channel, now=now)

    def unsubscribe_address(self, email: str, *, channel: str, now: datetime) -> bool | None:
        """Unsubscribes the subscriber with exactly this address (the studio's lookup);
        ``None`` when there is none, else whether something changed. As :meth:`unsubscribe`."""
        with self.engine.begin() as conn:
            row = subscriber_ops.by_email(conn, lookup_address(email), for_update=True)
            if row is None:
                return None
            return self.withdraw(conn, row, channel=channel, now=now)

    def withdraw(self, conn: Connection, row: Row[Any], *, channel: str, now: datetime) -> bool:
        """The unsubscribe itself, inside the caller's transaction (preferences use it too)."""
        changed = row.status != SubscriberStatus.UNSUBSCRIBED
        if changed:
            subscriber_ops.change(
                conn, row.id, status=SubscriberStatus.UNSUBSCRIBED, unsubscribed_at=now
            )
        enrolment_ops.stop_enrolments(conn, row.id, now=now)
        cancelled = mail_ops.cancel_mail(conn, row.id, now=now, reason="unsubscribed")
        suppression_ops.add(conn, self.settings, row.email, reason="unsubscribe", now=now)
        if changed:
            consent_ops.record(
                conn, subscriber_id=row.id, action="withdraw", channel=channel, now=now
            )
        log.info(
            "unsubscribed",
            extra={"action": "unsubscribe", "channel": channel, "cancelled": cancelled},
        )
        return changed

    def undo(self, token: str, *, now: datetime) -> int | None:
        """After an unsubscribe: queues a fresh confirmation (and nothing else).

        Returns the outbox id to send, or ``None`` (not unsubscribed, erased, or a
        confirmation went out in the last 10 minutes). Only confirming brings them back.
        """
        public_id = self.tokens.read("unsubscribe", token, now=now)
        with self.engine.begin() as conn:
            row = subscriber_ops.by_public_id(conn, public_id, for_update=True)
            if row is None or row.status != SubscriberStatus.UNSUBSCRIBED:
                return None
            return self.resubscribe(conn, row, channel="link", now=now)

    def resubscribe(
        self, conn: Connection, row: Row[Any], *, channel: str, now: datetime
    ) -> int | None:
        """Records the wish to come back and queues a confirmation, in the caller's transaction."""
        consent_ops.record(
            conn,
            subscriber_id=row.id,
            action="resubscribe",
            channel=channel,
            now=now,
            campaign=row.source_campaign,
        )
        return self._queue_confirmation(conn, row, self._confirmation_campaign(row), now)

    # Preferences ------------------------------------------------------------------

    def preferences(self, token: str, *, now: datetime) -> prefs.Preferences | None:
        """The choices of the person a preferences token names; ``None`` when erased."""
        public_id = self.tokens.read("preferences", token, now=now)
        with self.engine.connect() as conn:
            row = subscriber_ops.by_public_id(conn, public_id)
            return None if row is None else prefs.view(conn, self.catalogue, row)

    def change_preferences(
        self, token: str, action: str, *, campaign: str | None = None, now: datetime
    ) -> prefs.PreferenceChange | None:
        """Applies one choice of the preference centre; ``None`` when the person was erased.

        ``action`` is one of :data:`preferences.ACTIONS`; ``stop_sequence`` needs the
        ``campaign`` among the active ones. Raises :class:`SubscriptionError` (with a
        ``field``) for anything else. Every change is a consent record (``preferences``).
        """
        if action not in prefs.ACTIONS:
            raise SubscriptionError("Please choose one of the options.", field="action")
        public_id = self.tokens.read("preferences", token, now=now)
        with self.engine.begin() as conn:
            row = subscriber_ops.by_public_id(conn, public_id, for_update=True)
            if row is None:
                return None
            changed, outbox_id = self._apply_preference(conn, row, action, campaign, now)
            if changed and action not in (prefs.STOP_ALL, prefs.RESUBSCRIBE):
                consent_ops.record(
                    conn,
                    subscriber_id=row.id,
                    action="preferences",
                    channel="preferences",
                    now=now,
                    campaign=campaign if action == prefs.STOP_SEQUENCE else None,
                    detail=action,
                )
            fresh = subscriber_ops.by_public_id(conn, public_id)
            assert fresh is not None
            view = prefs.view(conn, self.catalogue, fresh)
        log.info("preferences", extra={"action": "preferences", "choice": action})
        return prefs.PreferenceChange(view, action, changed, outbox_id)

    def _apply_preference(
        self, conn: Connection, row: Row[Any], action: str, campaign: str | None, now: datetime
    ) -> tuple[bool, int | None]:
        if action == prefs.STOP_ALL:
            return self.withdraw(conn, row, channel="preferences", now=now), None
        if action == prefs.RESUBSCRIBE:
            if row.status != SubscriberStatus.UNSUBSCRIBED:
                return False, None
            return True, self.resubscribe(conn, row, channel="preferences", now=now)
        if row.status != SubscriberStatus.CONFIRMED:
            # Only a fresh confirmation changes an unsubscribed person's mail.
            raise SubscriptionError("You are not subscribed at the moment.", field="action")
        if action == prefs.STOP_SEQUENCE:
            return prefs.stop_sequence(conn, row, campaign, now=now), None
        if action in (prefs.STOP_NEWSLETTERS, prefs.RESUME_NEWSLETTERS):
            wanted = action == prefs.RESUME_NEWSLETTERS
            return prefs.set_newsletters(conn, row, wanted, now=now), None
        timing = prefs.Timing(self.settings, self.catalogue, row)
        if action == prefs.PAUSE:
            return prefs.pause(conn, row, timing, now=now), None
        return prefs.resume(conn, row, timing, now=now), None
