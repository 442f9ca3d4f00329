"""Unsubscribing by email: the ``mailto:`` address of every List-Unsubscribe header.

Marketing mail offers ``unsubscribe+TOKEN@<practice domain>``. A mail client that
uses it sends an ordinary message to that address; whatever receives mail for the
domain hands the raw message to ``nurture subscribers unsubscribe-mail`` on stdin
(a Postfix pipe transport, a procmail rule, a polling script), which calls
:func:`apply_unsubscribe_mail`. The subject and body are ignored; only the recipient
matters, and the token in it is as good as the one-click link's.

The recipient is looked for in the envelope recipient when the mail system passes it
(Postfix's ``${recipient}``, given as ``--recipient``), then in ``Delivered-To`` and
``X-Original-To`` (which Postfix's pipe adds with ``flags=DO``), ``To`` and ``Cc``
(forwarding and aliasing often keep the original address only in the envelope).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from email import policy
from email.parser import BytesParser
from email.utils import getaddresses

from sqlalchemy import Engine

from nurture.campaigns import Catalogue
from nurture.exceptions import TokenError
from nurture.mail.recipients import parse_unsubscribe_mailto
from nurture.mail.tokens import Tokens
from nurture.settings import Settings
from nurture.subscriptions import Subscriptions

log = logging.getLogger(__name__)

_HEADERS = ("Delivered-To", "X-Original-To", "To", "Cc")
#: A message bigger than this is not an unsubscribe request; only headers are read.
MAX_MESSAGE_BYTES = 10 * 1024 * 1024


def find_tokens(raw: bytes, recipients: Sequence[str] = ()) -> list[str]:
    """The unsubscribe tokens addressed by an RFC 5322 message: the envelope
    ``recipients`` first, then the headers in order.

    Tolerates malformed messages: headers that do not parse yield nothing.
    """
    tokens: list[str] = []
    for address in recipients:
        token = parse_unsubscribe_mailto(address)
        if token and token not in tokens:
            tokens.append(token)
    try:
        message = BytesParser(policy=policy.compat32).parsebytes(
            raw[:MAX_MESSAGE_BYTES], headersonly=True
        )
    except Exception:  # the parser is lenient; anything else means "not a message"
        return tokens
    for header in _HEADERS:
        values = [str(v) for v in message.get_all(header, [])]
        for _, address in getaddresses(values):
            token = parse_unsubscribe_mailto(address)
            if token and token not in tokens:
                tokens.append(token)
    return tokens


def apply_unsubscribe_mail(
    engine: Engine,
    settings: Settings,
    raw: bytes,
    now: datetime,
    *,
    recipients: Sequence[str] = (),
) -> bool:
    """Unsubscribes the person whose token the message is addressed to; ``True`` when valid.

    ``recipients`` are the envelope recipients, as the mail system gave them. A message
    with several tokens applies each valid one. Forged or expired tokens are ignored
    (logged without the token); nothing is ever sent back to the sender. Database
    failures raise (the command exits 75 so that the mail system tries again).
    """
    # Unsubscribing needs no campaign files, so none are read (they may be broken).
    subscriptions = Subscriptions(
        settings, engine, Tokens.from_settings(settings), Catalogue(campaigns={}, newsletters={})
    )
    applied = False
    for token in find_tokens(raw, recipients):
        try:
            subscriptions.unsubscribe(token, channel="mailto", now=now)
        except TokenError as exc:
            log.info(
                "inbound unsubscribe refused",
                extra={"action": "inbound", "reason": exc.context.get("reason", "expired")},
            )
            continue
        applied = True
    return applied
