"""The subscriber's path: sign-up, double opt-in, unsubscribe, preferences.

:class:`Subscriptions` is the service the web pages, the inbound unsubscribe and the
CLI call; the storage it uses is in ``nurture.store.subscribers``, ``enrolments``,
``subscriber_outbox``, ``consents`` and ``suppressions``. It never sends mail itself:
everything goes through the outbox.
"""

from __future__ import annotations

from nurture.store.consents import purge_expired_ips
from nurture.store.suppressions import is_suppressed
from nurture.subscriptions.preferences import ACTIONS, PreferenceChange, Preferences
from nurture.subscriptions.service import CONFIRMATION_INTERVAL, Confirmed, Person, Subscriptions
from nurture.subscriptions.validation import SignUpRequest, normalise_address

__all__ = [
    "ACTIONS",
    "CONFIRMATION_INTERVAL",
    "Confirmed",
    "Person",
    "PreferenceChange",
    "Preferences",
    "SignUpRequest",
    "Subscriptions",
    "is_suppressed",
    "normalise_address",
    "purge_expired_ips",
]
