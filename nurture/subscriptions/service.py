"""The subscriber's path: sign up, confirm, unsubscribe, undo.

Every method runs in one transaction and takes ``now``. Nothing here knows about HTTP:
the web layer turns requests into calls and the results into pages; mail is never sent
from here but queued in the outbox (the confirmation too), so a provider outage loses
nothing. The caller may hand a returned outbox id to ``Dispatcher.send_now`` to send
the confirmation at once.

The rules that keep a sensitive audience safe:

* sign-up answers the same for a new, pending, confirmed, unsubscribed or suppressed
  address, and changes nothing a confirmed person agreed to: a known address only gets
  a consent record and a fresh confirmation (at most one per 10 minutes and three per
  24 hours). The campaign, first name and time zone asked for travel with that
  confirmation, and confirming applies those of the email the link came from: a
  stranger's form cannot rename a pending person;
* every text that reaches the database is clean (no NUL, no lone surrogate), and a
  first name that does not look like one is dropped: until confirmation it was typed by
  a stranger, possibly to put a link in front of the address's owner;
* only a confirmation brings an address back after an unsubscribe, an erasure or a
  suppression, and only a confirm link signed *after* that event (an older link in the
  inbox cannot undo an unsubscribe, even once a fresh sign-up sent a new one);
* an unsubscribe cancels every queued message and suppresses the address in the same
  transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row

from nurture.campaigns import Catalogue
from nurture.exceptions import SubscriptionError, TokenError
from nurture.logs import mask_email
from nurture.mail.tokens import Purpose, Tokens, new_public_id, signed_at
from nurture.settings import Settings
from nurture.store import confirmations as confirmation_ops
from nurture.store import consents as consent_ops
from nurture.store import enrolments as enrolment_ops
from nurture.store import subscriber_outbox as mail_ops
from nurture.store import subscribers as subscriber_ops
from nurture.store import suppressions as suppression_ops
from nurture.store.statuses import EnrolmentStatus, SubscriberStatus
from nurture.subscriptions.opting_out import OptingOut
from nurture.subscriptions.validation import (
    SignUpRequest,
    clean_consent_version,
    clean_first_name,
    clean_form_url,
    clean_timezone,
    clean_user_agent,
    is_clean_text,
    normalise_address,
)

log = logging.getLogger(__name__)

#: A pending address gets at most one confirmation email per this interval.
CONFIRMATION_INTERVAL = timedelta(minutes=10)
_BUCKET_SECONDS = int(CONFIRMATION_INTERVAL.total_seconds())
#: And at most this many per :data:`CONFIRMATION_WINDOW`, whatever asks for them.
CONFIRMATIONS_PER_WINDOW = 3
CONFIRMATION_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Person:
    """What a page may show about the holder of a token: never the address."""

    public_id: str
    first_name: str | None
    status: str
    source_campaign: str | None


@dataclass(frozen=True)
class Confirmed:
    """The outcome of a confirmation; ``newly`` is false for a repeated click."""

    first_name: str | None
    campaign: str | None
    newly: bool


class Subscriptions(OptingOut):
    """The domain service behind the subscriber pages, the inbound unsubscribe and the CLI."""

    def __init__(
        self, settings: Settings, engine: Engine, tokens: Tokens, catalogue: Catalogue
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.tokens = tokens
        self.catalogue = catalogue

    # Sign-up ----------------------------------------------------------------------

    def sign_up(self, request: SignUpRequest, *, now: datetime) -> int | None:
        """Records an opt-in and queues a confirmation; returns the new outbox id or ``None``.

        Raises :class:`SubscriptionError` (with a ``field`` in its context and a message
        safe to show) for an invalid address, an unknown campaign or missing consent.
        Otherwise the outcome looks the same whatever the address's state; ``None``
        means no email was queued (one went out less than 10 minutes ago, or three in
        the last 24 hours).
        """
        email = normalise_address(
            request.email, check_deliverability=self.settings.check_deliverability
        )
        if not is_clean_text(request.campaign) or request.campaign not in (
            self.catalogue.campaigns
        ):
            raise SubscriptionError(
                "This sign-up form is out of date. Please reload the page.", field="campaign"
            )
        if request.consent is not True:
            raise SubscriptionError(
                "Please tick the box to say you agree to receive these emails.", field="consent"
            )
        first_name = clean_first_name(request.first_name)
        timezone = clean_timezone(request.timezone)
        wording, version, detail = self._wording_seen(request.consent_version)
        with self.engine.begin() as conn:
            row = self._find_or_create(conn, email, first_name, timezone, request, now)
            consent_ops.record(
                conn,
                subscriber_id=row.id,
                action="opt_in",
                channel="json" if request.channel == "json" else "form",
                now=now,
                wording=wording,
                wording_version=version,
                campaign=request.campaign,
                form_url=clean_form_url(request.form_url),
                ip=request.ip if is_clean_text(request.ip) else None,
                user_agent=clean_user_agent(request.user_agent),
                detail=detail,
            )
            outbox_id = self._queue_confirmation(
                conn, row, request.campaign, now, details=(first_name, timezone)
            )
        log.info(
            "sign-up",
            extra={
                "action": "sign_up",
                "email": mask_email(email),
                "campaign": request.campaign,
                "queued": outbox_id is not None,
            },
        )
        return outbox_id

    def _wording_seen(self, stated: str | None) -> tuple[str | None, str | None, str | None]:
        """The consent wording, its version and a remark, for the version a form stated.

        Only the current version's wording is known; a form showing another (a snippet
        copied before the wording changed) or not saying which is recorded as such, with
        no wording, rather than as if the person had read today's.
        """
        version = clean_consent_version(stated)
        if version == self.settings.consent_version:
            return self.settings.consent_wording, version, None
        if version is None:
            return None, None, "the form did not state its consent version: wording unknown"
        return None, version, f"the form showed consent version {version}: wording not on record"

    def _find_or_create(
        self,
        conn: Connection,
        email: str,
        first_name: str | None,
        timezone: str | None,
        request: SignUpRequest,
        now: datetime,
    ) -> Row[Any]:
        row = subscriber_ops.by_email(conn, email, for_update=True)
        if row is None:
            row = subscriber_ops.create(
                conn,
                {
                    "public_id": new_public_id(),
                    "email": email,
                    "first_name": first_name,
                    "timezone": timezone,
                    "status": SubscriberStatus.PENDING,
                    "newsletters": True,
                    "source_campaign": request.campaign,
                    "created_at": now,
                },
            )
            if row is None:  # a concurrent sign-up created it first: read theirs, locked
                row = subscriber_ops.by_email(conn, email, for_update=True)
            assert row is not None
            return row
        # A known address: whatever the form says, the person's details stay as they
        # are: the campaign, first name and time zone asked for travel with the
        # confirmation instead (confirmation_details), applied only when that email's
        # link is pressed. Anyone can type a pending address into the form. A pending
        # one still remembers the latest campaign (an expired link's page offers it).
        if row.status != SubscriberStatus.PENDING:
            return row
        subscriber_ops.change(conn, row.id, source_campaign=request.campaign)
        refreshed = subscriber_ops.by_email(conn, email)
        assert refreshed is not None
        return refreshed

    def _queue_confirmation(
        self,
        conn: Connection,
        row: Row[Any],
        campaign: str,
        now: datetime,
        *,
        details: tuple[str | None, str | None] | None = None,
    ) -> int | None:
        """Queues a confirmation unless one was queued in the last 10 minutes, or three
        in the last 24 hours (a flood of them would be ours, in someone's inbox).

        The step name holds the 10-minute bucket, so the outbox's unique constraint makes
        the limit hold even for two sign-ups racing. A confirmation queued before an
        unsubscribe is void (:func:`_confirmation_current`), so it does not count: the
        step then also names the unsubscribe, to stay unique. The daily cap counts
        every confirmation, void or not; the subscriber row is locked, so it holds
        under races too. ``details`` (first name, time zone) from a sign-up form are
        kept with this confirmation only.
        """
        last = row.confirmation_sent_at
        void = last is not None and not _confirmation_current(row, None)
        if last is not None and not void and now - last < CONFIRMATION_INTERVAL:
            return None
        # Never sent one (every confirmation is queued here, and stamps the row): no count.
        recent = (
            0
            if last is None
            else confirmation_ops.queued_since(conn, row.id, now - CONFIRMATION_WINDOW)
        )
        if recent >= CONFIRMATIONS_PER_WINDOW:
            log.info("confirmation cap reached", extra={"action": "confirmation_capped"})
            return None
        step = f"confirm-{int(now.timestamp()) // _BUCKET_SECONDS}"
        if void and row.unsubscribed_at is not None:
            step += f"-{int(row.unsubscribed_at.timestamp())}"
        outbox_id = mail_ops.queue_confirmation(conn, row.id, campaign=campaign, step=step, now=now)
        if outbox_id is not None:
            subscriber_ops.change(conn, row.id, confirmation_sent_at=now)
            if details is not None:
                first_name, timezone = details
                confirmation_ops.keep_details(
                    conn,
                    outbox_id=outbox_id,
                    subscriber_id=row.id,
                    first_name=first_name,
                    timezone=timezone,
                )
        return outbox_id

    # Confirmation -----------------------------------------------------------------

    def person(self, purpose: Purpose, token: str, *, now: datetime) -> Person | None:
        """Who a valid token names, read-only (for a page); ``None`` when erased.

        Raises :class:`TokenError` / :class:`TokenExpired` as :meth:`Tokens.read` does,
        and for a confirm link that a later unsubscribe or suppression made void (so
        the page does not offer a button that cannot work).
        """
        public_id = self.tokens.read(purpose, token, now=now)
        with self.engine.connect() as conn:
            row = subscriber_ops.by_public_id(conn, public_id)
            if row is None:
                return None
            if purpose == "confirm":
                suppression = suppression_ops.lookup(conn, self.settings, row.email)
                if not _link_current(conn, row, suppression, signed_at(token)):
                    raise TokenError("a later change replaced this link", reason="superseded")
        return Person(row.public_id, row.first_name, row.status, row.source_campaign)

    def source_campaign(self, public_id: str) -> str | None:
        """The campaign a person last signed up from (an expired link's page offers it again)."""
        with self.engine.connect() as conn:
            row = subscriber_ops.by_public_id(conn, public_id)
        return None if row is None else row.source_campaign

    def confirm(
        self,
        token: str,
        *,
        now: datetime,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> Confirmed:
        """Confirms the address and enrols it in the campaign its email named, due now.

        The campaign is the one of the latest confirmation email queued before the link
        was made (a sign-up for another article by a confirmed person changes nothing
        until they press *that* email's link). A repeat is harmless (no second
        enrolment). Lifts any suppression: this is the fresh double opt-in. ``ip`` and
        ``user_agent`` of whoever pressed the button go into the consent record. Raises
        :class:`TokenError` for a bad token, an erased subscriber, or a link older than a
        later unsubscribe or suppression.
        """
        public_id = self.tokens.read("confirm", token, now=now)
        made_at = signed_at(token)
        # Timestamps are whole seconds, rounded down: a row queued in the second the link
        # was made counts as queued before it.
        queued_by = made_at + timedelta(seconds=1) if made_at is not None else None
        with self.engine.begin() as conn:
            row = subscriber_ops.by_public_id(conn, public_id, for_update=True)
            if row is None:
                raise TokenError("this link no longer works", reason="unknown")
            suppression = suppression_ops.lookup(conn, self.settings, row.email)
            if not _link_current(conn, row, suppression, made_at):
                raise TokenError("a later change replaced this link", reason="superseded")
            newly = row.status != SubscriberStatus.CONFIRMED
            first_name = row.first_name
            slug = mail_ops.confirmation_campaign(conn, row.id, queued_by=queued_by)
            if slug not in self.catalogue.campaigns:
                slug = row.source_campaign
            if newly:
                values: dict[str, Any] = {
                    "status": SubscriberStatus.CONFIRMED,
                    "confirmed_at": now,
                    "unsubscribed_at": None,
                    "newsletters": True,
                }
                if row.status == SubscriberStatus.PENDING and slug:
                    values["source_campaign"] = slug  # what they confirmed, not the last form
                details = confirmation_ops.details_of_link(conn, row.id, queued_by=queued_by)
                if row.status == SubscriberStatus.PENDING and details is not None:
                    # The details of the form whose email was confirmed, not the last form.
                    first_name, timezone = details
                    values["first_name"] = first_name
                    values["timezone"] = timezone
                subscriber_ops.change(conn, row.id, **values)
            if suppression is not None:
                suppression_ops.remove(conn, self.settings, row.email)
            enrolled = self._enrol(conn, row, slug, now)
            if newly or enrolled:
                consent_ops.record(
                    conn,
                    subscriber_id=row.id,
                    action="confirm",
                    channel="link",
                    now=now,
                    wording=self.settings.consent_wording,
                    wording_version=self.settings.consent_version,
                    campaign=slug,
                    ip=ip if is_clean_text(ip) else None,
                    user_agent=clean_user_agent(user_agent),
                )
        log.info("confirmed", extra={"action": "confirm", "campaign": slug, "newly": newly})
        return Confirmed(first_name, slug, newly)

    def _enrol(self, conn: Connection, row: Row[Any], slug: str | None, now: datetime) -> bool:
        """Enrols in ``slug``; revives a sequence stopped before this sign-up."""
        campaign = self.catalogue.campaigns.get(slug) if slug else None
        if campaign is None:
            return False
        if enrolment_ops.enrol(conn, row.id, campaign.slug, now=now):
            return True
        current = next(
            e for e in enrolment_ops.enrolments_of(conn, row.id) if e.campaign == campaign.slug
        )
        # A stopped sequence restarts where it stopped only when the person asked again
        # (signed up, or pressed undo) after it stopped: an old link cannot revive it.
        sent = row.confirmation_sent_at
        if current.status != EnrolmentStatus.STOPPED or sent is None or current.updated_at > sent:
            return False
        position = campaign.position_after(current.last_step, current.next_step)
        if position >= len(campaign.steps):
            finished = EnrolmentStatus.HELD if campaign.hold else EnrolmentStatus.COMPLETED
            enrolment_ops.set_enrolment(conn, current.id, status=finished, updated_at=now)
            return False
        step = campaign.steps[position].slug
        revived = mail_ops.requeue_cancelled(
            conn, row.id, campaign=campaign.slug, step=step, now=now
        )
        # A revived row is the planned step already; otherwise the planner plans it now.
        enrolment_ops.set_enrolment(
            conn,
            current.id,
            status=EnrolmentStatus.ACTIVE,
            next_due_at=None if revived else now,
            updated_at=now,
        )
        return True

    def _confirmation_campaign(self, row: Row[Any]) -> str:
        # The confirmation email names an article; an imported person may have none.
        if row.source_campaign in self.catalogue.campaigns:
            return str(row.source_campaign)
        return next(iter(self.catalogue.campaigns), row.source_campaign or "newsletters")


def _link_current(
    conn: Connection,
    row: Row[Any],
    suppression: suppression_ops.Suppression | None,
    made_at: datetime | None,
) -> bool:
    """Whether a confirm link signed at ``made_at`` postdates everything that ended the
    subscription: an unsubscribe, a suppression, any withdrawal ever recorded.

    Its own signing time is compared, not the latest confirmation's: after an
    unsubscribe, a stranger's sign-up sends a fresh email, which must not bring the
    links of older ones back to life. The time is in whole seconds, rounded down, so a
    link made in the very second of an unsubscribe counts as older.
    """
    if made_at is None or not _confirmation_current(row, suppression):
        return False
    ended = [
        moment
        for moment in (
            row.unsubscribed_at,
            suppression.created_at if suppression is not None else None,
            consent_ops.last_at(conn, row.id, "withdraw"),
        )
        if moment is not None
    ]
    return all(made_at > moment for moment in ended)


def _confirmation_current(row: Row[Any], suppression: suppression_ops.Suppression | None) -> bool:
    """Whether the latest confirmation sent to ``row`` postdates every withdrawal.

    A confirm link is minted when its email is sent, after the row was queued at
    ``confirmation_sent_at``; rows queued before an unsubscribe were cancelled by it.
    So any link in existence predates the unsubscribe when this returns ``False``.
    """
    sent = row.confirmation_sent_at
    if sent is None:
        return False
    unsubscribed_at = row.unsubscribed_at
    if row.status == SubscriberStatus.UNSUBSCRIBED and unsubscribed_at and unsubscribed_at >= sent:
        return False
    return not (suppression is not None and suppression.created_at > sent)
