"""The vocabularies stored in ``status`` and ``kind`` columns, one enum each.

They are ``StrEnum``: a member compares equal to the text in the database and binds as
that text, so rows read back as plain strings still compare with the members.
"""

from __future__ import annotations

from enum import StrEnum


class SubscriberStatus(StrEnum):
    """Where a person stands: signed up, confirmed by their own click, or gone."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"


class EnrolmentStatus(StrEnum):
    """A person's place in one sequence."""

    ACTIVE = "active"
    COMPLETED = "completed"
    STOPPED = "stopped"
    #: Reached the end of an evergreen (``hold``) sequence: waits for steps added later.
    HELD = "held"


class OutboxStatus(StrEnum):
    """The life of one email; see :mod:`nurture.store.outbox` for the transitions."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"


class OutboxKind(StrEnum):
    """What an outbox row is: a sequence step, a newsletter, or a confirmation email."""

    SEQUENCE = "sequence"
    NEWSLETTER = "newsletter"
    CONFIRMATION = "confirmation"


#: The kinds that are marketing mail: list headers, unsubscribe, suppression apply.
MARKETING = (OutboxKind.SEQUENCE, OutboxKind.NEWSLETTER)
#: Outbox rows that have not left yet and can still be cancelled or moved.
WAITING = (OutboxStatus.QUEUED,)
