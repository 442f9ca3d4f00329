"""The tables. SQLAlchemy Core metadata, shared by the operations and by Alembic.

Times are stored as naive UTC and handed out as aware UTC (:class:`UTCDateTime`), so
SQLite and PostgreSQL compare and sort them the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Computed,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid (auto-increment, fast).
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python, naive UTC in the database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else naive_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def naive_utc(value: datetime) -> datetime:
    """An aware time as the database stores it: naive UTC. A naive time is refused: which
    zone it meant is unknown."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the database; pass an aware UTC time")
    return value.astimezone(UTC).replace(tzinfo=None)


def as_utc(value: datetime | str) -> datetime:
    """A stored time as an aware UTC datetime: naive from the driver, or text on SQLite
    (raw SQL results, and columns a query leaves untyped)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC)


subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # The only identifier that ever appears in a URL (inside a signed token).
    Column("public_id", String(32), nullable=False, unique=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("first_name", String(100)),
    Column("timezone", String(64)),
    # pending -> confirmed -> unsubscribed (and back to pending through a fresh opt-in)
    Column("status", String(16), nullable=False),
    Column("newsletters", Boolean, nullable=False, server_default=text("true")),
    Column("paused_until", UTCDateTime),
    Column("source_campaign", String(100)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("confirmed_at", UTCDateTime),
    Column("unsubscribed_at", UTCDateTime),
    Column("confirmation_sent_at", UTCDateTime),
    # The links of this subscriber's marketing emails, signed ahead of time by
    # housekeeping (delivery.presigning), so that a newsletter to a million people does
    # not sign two million tokens while it sends: "UNSUBSCRIBE PREFERENCES", the id of
    # the key that signed them, and when. Dispatch signs afresh when they are missing,
    # made with a key that is no longer the newest, or too old (mail.tokens).
    Column("link_tokens", String(140)),
    Column("links_key", String(16)),
    Column("links_signed_at", UTCDateTime),
    Index("ix_subscribers_status_newsletters", "status", "newsletters"),
)

consents = Table(
    "consents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # Kept (without personal data) after an erasure, as proof of what was done.
    Column("subscriber_id", Id, ForeignKey("subscribers.id", ondelete="SET NULL"), index=True),
    # opt_in, confirm, withdraw, preferences, import, erase, resubscribe
    Column("action", String(20), nullable=False),
    # form, json, link, one_click, webhook, mailto, preferences, import, cli
    Column("channel", String(20), nullable=False),
    Column("wording", Text),
    Column("wording_version", String(40)),
    Column("campaign", String(100)),
    Column("form_url", String(500)),
    Column("ip", String(64)),
    Column("user_agent", String(300)),
    Column("detail", Text),
    Column("created_at", UTCDateTime, nullable=False, index=True),
)

enrolments = Table(
    "enrolments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("subscriber_id", Id, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("campaign", String(100), nullable=False),
    # active, completed, stopped, held
    Column("status", String(16), nullable=False),
    # Position in the campaign's step list of the next step to plan (how many steps the
    # reader has had); ``last_step`` anchors it when the list changes.
    Column("next_step", Integer, nullable=False, server_default=text("0")),
    # The slug of the last step sent (or given up): the reader's place, by name.
    Column("last_step", String(150)),
    # When that step becomes due (before the send window is applied); NULL while a
    # planned step waits in the outbox, or when the enrolment is over.
    Column("next_due_at", UTCDateTime),
    Column("enrolled_at", UTCDateTime, nullable=False),
    Column("last_sent_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("subscriber_id", "campaign"),
    Index("ix_enrolments_due", "status", "next_due_at"),
)

outbox_steps = Table(
    "outbox_steps",
    metadata,
    # One row for each (campaign, step) ever planned, never changed or deleted: the
    # outbox's unique key names a step by this id (store.steps). Confirmation emails
    # add one per ten minutes with a sign-up (their step names a time bucket).
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign", String(100), nullable=False),
    Column("step", String(150), nullable=False),
    UniqueConstraint("campaign", "step", name="uq_outbox_steps"),
)

#: Fill factor of the outbox on PostgreSQL: room left in each page for a row's next
#: version. With it, and with no index on a column the "sent" mark changes (``status``
#: is indexed only through the two generated columns below, which stay NULL from
#: ``sending`` to ``sent``), that mark is a HOT update: the row is rewritten in its own
#: page and no index is touched. Measured on 100k rows: the mark went from 1.7-1.8 to
#: 1.1 s (benchmarks.bookkeeping), about a third less.
OUTBOX_FILLFACTOR = 60

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # No foreign key: its check ran once per row planned (over a third of the time a
    # newsletter took to plan on PostgreSQL). Rows point at subscribers by
    # construction (planning copies them from the subscribers table), erasing a
    # subscriber clears their rows' id (store.subscribers.remove), and dispatch cancels a
    # row whose subscriber is gone ("no subscriber").
    Column("subscriber_id", Id),
    # sequence, newsletter (marketing) or confirmation (transactional)
    Column("kind", String(16), nullable=False),
    Column("campaign", String(100), nullable=False),
    Column("step", String(150), nullable=False),
    # The (campaign, step) above as a small integer (outbox_steps), for the unique key:
    # its index holds 12 bytes a row instead of both strings, and PostgreSQL writes an
    # entry to it at every insert and at every "sending" mark.
    Column("step_id", Integer, nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    # A newsletter's "not after": past it, the row is cancelled instead of sent.
    Column("expires_at", UTCDateTime),
    # queued -> sending -> sent | failed | unknown (-> sent | queued); queued -> cancelled
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("lease_until", UTCDateTime),
    Column("worker", String(64)),
    Column("provider_message_id", String(200)),
    Column("error", String(500)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    # The keys of the two partial indexes, kept by the database itself: ``due_at`` while
    # the row is queued, and the time its outcome became unknown while it is unknown;
    # NULL otherwise. Indexing these, not ``status``, is what lets a row's "sent" mark
    # leave every index alone (see OUTBOX_FILLFACTOR). Migration 0009 makes them STORED
    # on PostgreSQL and VIRTUAL on SQLite (only the index holds the value); ``persisted``
    # is left unset here, since one Computed cannot say both.
    Column("queued_due", UTCDateTime, Computed("CASE WHEN status = 'queued' THEN due_at END")),
    Column(
        "unknown_since", UTCDateTime, Computed("CASE WHEN status = 'unknown' THEN updated_at END")
    ),
    # The guarantee against duplicates: one row per (subscriber, campaign step).
    UniqueConstraint("subscriber_id", "step_id", name="uq_outbox_send"),
    # Few indexes, chosen for the hot path: a row is rewritten twice on its way out
    # (sending, sent) and every index it enters or leaves is paid at each rewrite. The
    # unique constraint also serves "this subscriber's mail" (subscriber_id leads it).
    # "Due now" reads only queued rows. Rows ``sending`` have no index of their own:
    # entering one and leaving it again cost a fifth of each rewrite; their claims
    # (outbox_claims) say which they are. Rows ``unknown`` are few. A query uses these
    # partial indexes by comparing their column (which implies NOT NULL, on both
    # backends), with bound parameters too.
    Index(
        "ix_outbox_queue",
        "queued_due",
        "id",  # the full sort key of "oldest first", so taking a batch never sorts the queue
        sqlite_where=text("queued_due IS NOT NULL"),
        postgresql_where=text("queued_due IS NOT NULL"),
    ),
    Index(
        "ix_outbox_unknown",
        "id",
        sqlite_where=text("unknown_since IS NOT NULL"),
        postgresql_where=text("unknown_since IS NOT NULL"),
    ),
    postgresql_with={"fillfactor": OUTBOX_FILLFACTOR},
)

outbox_claims = Table(
    "outbox_claims",
    metadata,
    # One row per batch marked ``sending``, written in the same transaction: the claim
    # (fencing) token its rows carry in outbox.worker, its lease, and its rows' ids as a
    # JSON list. Deleted when the batch is recorded; a claim whose lease ran out turns
    # the rows it still holds ``unknown`` (store.outbox.expire_leases).
    Column("token", String(64), primary_key=True),
    Column("lease_until", UTCDateTime, nullable=False),
    Column("ids", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

confirmation_details = Table(
    "confirmation_details",
    metadata,
    # The details a sign-up form carried, kept with the confirmation email it queued and
    # applied only when that email's link is pressed: anyone can submit a pending
    # address, so the form is not the person until they confirm. Goes with the
    # subscriber (erasure) and with the outbox row (retention).
    Column("outbox_id", Id, ForeignKey("outbox.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "subscriber_id",
        Id,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("first_name", String(100)),
    Column("timezone", String(64)),
)

suppressions = Table(
    "suppressions",
    metadata,
    # HMAC of the normalised address with a SECRET_KEY: survives erasure, reveals nothing.
    Column("email_hash", String(64), primary_key=True),
    # unsubscribe, bounce, dropped, spamreport, erased, manual
    Column("reason", String(20), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

webhook_events = Table(
    "webhook_events",
    metadata,
    # Provider event id (SendGrid sg_event_id): the key that makes replays harmless.
    Column("event_id", String(100), primary_key=True),
    Column("provider", String(20), nullable=False),
    Column("event", String(30), nullable=False),
    Column("outbox_id", Id, index=True),
    Column("occurred_at", UTCDateTime),
    Column("received_at", UTCDateTime, nullable=False),
    Column("detail", String(500)),
)

newsletter_runs = Table(
    "newsletter_runs",
    metadata,
    Column("slug", String(150), primary_key=True),
    Column("planned_at", UTCDateTime, nullable=False),
    Column("recipients", Integer, nullable=False),
    # Planning goes through the audience in subscriber-id chunks, each committed on
    # its own: the cursor is where the next chunk starts (a crash resumes there).
    Column("cursor", BigInteger, nullable=False, server_default=text("0")),
    Column("done", Boolean, nullable=False, server_default=text("false")),
)

job_runs = Table(
    "job_runs",
    metadata,
    # One row per scheduler job: what /healthz and /metrics report across processes.
    Column("job", String(40), primary_key=True),
    Column("last_started_at", UTCDateTime),
    Column("last_finished_at", UTCDateTime),
    Column("last_ok_at", UTCDateTime),
    Column("last_error", String(500)),
    Column("duration_seconds", String(20)),
)

# Aggregate counts: numbers about steps and links, never about a person. -------------

link_clicks = Table(
    "link_clicks",
    metadata,
    # One row per link of a step per day (LINK_COUNTS): how often /l/{id} was followed.
    Column("campaign", String(100), primary_key=True),
    Column("step", String(150), primary_key=True),
    # A short hash of the target: the link's name within its step.
    Column("link", String(16), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("target", String(2000), nullable=False),
    Column("clicks", Integer, nullable=False),
)

outbox_daily = Table(
    "outbox_daily",
    metadata,
    # Outbox rows older than RETENTION_SENT_DAYS, folded into counts before deletion:
    # how many emails of a step ended in each state on each day.
    Column("kind", String(16), primary_key=True),
    Column("campaign", String(100), primary_key=True),
    Column("step", String(150), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("count", Integer, nullable=False),
)

sequence_stops = Table(
    "sequence_stops",
    metadata,
    # The stopped enrolments of erased subscribers, folded into counts before the
    # rows go: how many left a sequence after receiving ``received`` steps, per day.
    Column("campaign", String(100), primary_key=True),
    Column("received", Integer, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("count", Integer, nullable=False),
)

goal_counts = Table(
    "goal_counts",
    metadata,
    # Readers whose sequence stopped on a goal (``stop_when: [booked]``), counted per
    # campaign, per number of steps received before it ("booked after step 3"), per day.
    Column("campaign", String(100), primary_key=True),
    Column("goal", String(30), primary_key=True),
    Column("after_step", Integer, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("count", Integer, nullable=False),
)

rate_limit_hits = Table(
    "rate_limit_hits",
    metadata,
    # The sign-up rate limit shared by every web process on PostgreSQL: one row per
    # allowed request, per client network (an IP address or a /64, never a person).
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(80), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_rate_limit_hits_key_at", "key", "at"),
)
