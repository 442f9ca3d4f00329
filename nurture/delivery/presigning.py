"""Links signed ahead of time: each confirmed subscriber's unsubscribe and preferences
tokens, kept on their row, so that a newsletter's dispatch reads them instead of
signing two tokens for every recipient (about a tenth of its work on SQLite).

Housekeeping signs, walking a thousand subscriber ids per short transaction, those whose links
are missing, were made with a key that is no longer the newest, or are halfway to the
age after which dispatch stops using them (:meth:`Tokens.links_reusable_since`). Dispatch
never depends on it: it signs afresh any link it finds missing or too old.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Engine

from nurture.mail.tokens import LINKS, Tokens
from nurture.store import link_tokens

log = logging.getLogger(__name__)
#: Subscriber ids looked at per transaction.
BATCH = 1000
#: At most this many per housekeeping run (every five minutes): a list of a million is
#: signed ahead within two hours of an upgrade or a new key, in short transactions.
PER_RUN = 50_000


def presign_links(engine: Engine, tokens: Tokens, *, now: datetime, limit: int = PER_RUN) -> int:
    """Signs ahead the links that are due (see the module), walking the subscribers in
    ranges of ids; returns how many subscribers' it signed (at most about ``limit``)."""
    key = tokens.link_key
    # Refreshed halfway through the time dispatch may use them, so it rarely meets one
    # too old to use.
    signed_before = now - tokens.link_reuse / 2
    sign = tokens.signing(LINKS, now=now)
    with engine.connect() as conn:
        last = link_tokens.last_id(conn)
    after, done = 0, 0
    while after < last and done < limit:
        with engine.begin() as conn:
            rows = link_tokens.due(
                conn, key=key, signed_before=signed_before, after_id=after, up_to=after + BATCH
            )
            signed = []
            for row in rows:
                try:
                    signed.append((row.id, " ".join(sign(row.public_id))))
                except ValueError:  # a malformed public_id: dispatch refuses it too
                    continue
            link_tokens.keep(conn, signed, key=key, at=now)
        after, done = after + BATCH, done + len(signed)
    if done:
        log.info(f"{done} subscriber(s)' links signed ahead", extra={"signed": done})
    return done
