"""An address's canonical form and its keyed hash: how the suppression list knows a person.

The suppression list (:mod:`nurture.store.suppressions`) keeps no addresses, only
:func:`email_hash` of each: an HMAC under a key, which recognises the address again but
cannot be turned back into it without the key. :func:`suppression_keys` is the policy
for which keys those are, so that an entry outlives every rotation of ``SECRET_KEYS``.

These are pure functions of an address and the settings, kept apart from the signed
link tokens (:mod:`nurture.mail.tokens`). They sit in ``mail`` rather than in
``subscriptions`` because the store uses them: ``nurture.subscriptions`` imports the
store, so a store module importing anything from that package would close a cycle.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING

from nurture.exceptions import ConfigurationError

if TYPE_CHECKING:
    from nurture.settings import Settings


def normalise_email(email: str) -> str:
    """The form of an address that hashes compare: NFC, trimmed, lower-cased."""
    return unicodedata.normalize("NFC", email.strip()).lower()


def email_hash(secret_key: str, email: str) -> str:
    """HMAC-SHA256 (hex, 64 characters) of the normalised address under one secret key.

    Kept in the suppression list after erasure: it recognises the address again but
    cannot be turned back into it without the key.
    """
    message = b"nurture.email-hash:" + normalise_email(email).encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def suppression_keys(settings: Settings) -> list[str]:
    """The keys the suppression list is hashed under, the one for new entries first.

    New entries use ``SUPPRESSION_KEY`` when it is set, else the *oldest* of
    ``SECRET_KEYS``: rotation adds keys at the front, so every entry keeps one key for as
    long as the first key ever configured stays listed. Lookups also try every listed
    secret key, which finds entries written under an earlier rule or an earlier key.
    """
    secret = settings.secret_key_values()
    configured = settings.suppression_key
    dedicated = configured.get_secret_value() if configured is not None else ""
    first = dedicated or (secret[-1] if secret else "")
    if not first:
        raise ConfigurationError("NURTURE_SECRET_KEYS: at least one non-empty key is needed")
    return list(dict.fromkeys([first, *(key for key in secret if key)]))


def email_hashes(settings_or_keys: Settings | Sequence[str] | str, email: str) -> list[str]:
    """:func:`email_hash` under several keys: look up all of them after a rotation.

    Given settings, the keys are :func:`suppression_keys` (the key for new entries
    first); given keys, those in order.
    """
    keys: Sequence[str]
    if isinstance(settings_or_keys, str):
        keys = [settings_or_keys]
    elif isinstance(settings_or_keys, Sequence):
        keys = settings_or_keys
    else:
        keys = suppression_keys(settings_or_keys)
    return [email_hash(key, email) for key in keys]
