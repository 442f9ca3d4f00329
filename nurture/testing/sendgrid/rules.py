"""SendGrid's limits and the rules its JSON Schema leaves out, as plain functions.

The schema says what shape a ``/v3/mail/send`` body has; SendGrid also refuses bodies
that are well shaped but break a documented rule: reserved headers, names with ``;``
or ``,``, oversized ``substitutions`` and ``custom_args``, a ``send_at`` too far ahead,
content types out of order. Each function here checks one such rule on one part of a
body and returns the errors SendGrid would report, in its ``{"message", "field"}``
form; :mod:`nurture.testing.sendgrid.validation` decides where to apply them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

#: Personalizations checked against the schema in ``validate="sample"`` mode.
SAMPLE_SIZE = 5
MAX_RECIPIENTS = 1000
MAX_SUBSTITUTION_BYTES = 10_000
MAX_CUSTOM_ARGS_BYTES = 10_000
MAX_SEND_AT_AHEAD = 72 * 3600
#: Headers a request may not set (SendGrid's documented list), lower-cased.
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "x-sg-id", "x-sg-eid", "received", "dkim-signature", "Content-Type",
        "Content-Transfer-Encoding", "To", "From", "Subject", "Reply-To", "CC", "BCC",
    )
)  # fmt: skip
BAD_NAME = re.compile(r"[;,]")

#: One entry of SendGrid's ``{"errors": [...]}`` answer.
Error = dict[str, Any]


def error(message: str, field: str | None) -> Error:
    """One error as SendGrid reports it; ``field`` is a dotted path or ``None``."""
    # Schema messages can quote a whole (huge) instance: keep answers readable.
    return {"message": message if len(message) <= 300 else message[:297] + "...", "field": field}


def named_parties(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The envelope's named parties (sender and reply-to addresses) with their paths."""
    for field in ("from", "reply_to"):
        if isinstance(body.get(field), dict):
            yield field, body[field]
    for i, party in enumerate(body.get("reply_to_list") or ()):
        if isinstance(party, dict):
            yield f"reply_to_list.{i}", party


def content_rules(body: dict[str, Any]) -> list[Error]:
    """Content is required without a template; each type once, ``text/plain`` first."""
    content = body.get("content")
    if not content:
        if body.get("template_id"):
            return []
        return [error("Unless a valid template_id is provided, content is required.", "content")]
    if not isinstance(content, list):
        return []
    types = [c.get("type") for c in content if isinstance(c, dict)]
    errors = []
    if len(set(types)) != len(types):
        errors.append(error("Each content type may appear only once.", "content"))
    if "text/plain" in types and types[0] != "text/plain":
        errors.append(
            error("If present, text/plain must be first, followed by text/html.", "content")
        )
    return errors


def header_rules(headers: Any, field: str) -> list[Error]:
    """No reserved header may be set, and every value is a string."""
    if not isinstance(headers, dict):
        return []
    errors = []
    for name, value in headers.items():
        if name.lower() in RESERVED_HEADERS:
            errors.append(error(f"The header {name} may not be set.", f"{field}.{name}"))
        if not isinstance(value, str):
            errors.append(error("Header values must be strings.", f"{field}.{name}"))
    return errors


def personalization_rules(item: dict[str, Any], where: str, *, strict: bool) -> list[Error]:
    """The rules on one personalization's headers, substitutions, arguments and send time.

    ``strict`` adds the type check on ``substitutions`` that the schema makes, for a
    personalization the schema did not see.
    """
    errors = header_rules(item.get("headers"), f"{where}.headers")
    substitutions = item.get("substitutions")
    if substitutions is not None:
        if strict and not (
            isinstance(substitutions, dict)
            and all(isinstance(v, str) for v in substitutions.values())
        ):
            errors.append(
                error("Substitutions must map strings to strings.", f"{where}.substitutions")
            )
        elif size(substitutions) > MAX_SUBSTITUTION_BYTES:
            errors.append(
                error("Substitutions may not exceed 10,000 bytes.", f"{where}.substitutions")
            )
    args = item.get("custom_args")
    if isinstance(args, dict):
        if not all(isinstance(v, str) for v in args.values()):
            errors.append(error("custom_args values must be strings.", f"{where}.custom_args"))
        elif size(args) > MAX_CUSTOM_ARGS_BYTES:
            errors.append(error("custom_args may not exceed 10,000 bytes.", f"{where}.custom_args"))
    errors.extend(send_at_rule(item.get("send_at"), f"{where}.send_at"))
    return errors


def send_at_rule(value: Any, field: str) -> list[Error]:
    """A scheduled send may be at most 72 hours ahead."""
    if isinstance(value, int) and value > time.time() + MAX_SEND_AT_AHEAD:
        return [error("send_at may be at most 72 hours ahead.", field)]
    return []


def small_strings(mapping: Any, limit: int) -> bool:
    """Whether ``mapping`` maps strings to strings within ``limit`` bytes, cheaply."""
    if type(mapping) is not dict:
        return False
    try:
        # join() refuses anything but strings: the type check and the count in one go.
        chars = len("".join(mapping)) + len("".join(mapping.values()))
    except TypeError:
        return False
    # A character is at most 4 bytes of UTF-8: encode only when that bound is too high.
    return chars * 4 <= limit or size(mapping) <= limit


def size(mapping: Any) -> int:
    """The UTF-8 bytes of a mapping's keys and values, as SendGrid counts its limits."""
    if not isinstance(mapping, dict):
        return 0
    return sum(len(str(k).encode()) + len(str(v).encode()) for k, v in mapping.items())
