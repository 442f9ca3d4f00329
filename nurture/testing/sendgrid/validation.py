"""Checks a ``/v3/mail/send`` body as SendGrid would: its JSON Schema, then its rules.

:class:`Validator` runs SendGrid's JSON Schema (``mail_send_request.schema.json``, a
copy of ``shared/sendgrid``'s kept beside this module) over a body, then the rules the
schema leaves out (:mod:`nurture.testing.sendgrid.rules`) over every personalization,
and counts the recipients. In ``"sample"`` mode the schema sees the envelope and the
first :data:`~nurture.testing.sendgrid.rules.SAMPLE_SIZE` personalizations only, so a
million-recipient benchmark is not slowed by schema checks; the rules still see all.

``jsonschema`` is imported when the first :class:`Validator` is made, not before: it
comes with the ``nurture[testing]`` extra, and a production install need not carry it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib import resources
from typing import Any, Literal

from nurture.testing.sendgrid import rules
from nurture.testing.sendgrid.rules import Error, error

SCHEMA_FILE = "mail_send_request.schema.json"


def load_schema() -> dict[str, Any]:
    """The ``/v3/mail/send`` request schema shipped with the package."""
    text = resources.files("nurture.testing.sendgrid").joinpath(SCHEMA_FILE).read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def _schema_validator() -> Any:
    """A Draft 2020-12 validator over :func:`load_schema`, with format checks on."""
    try:
        import jsonschema
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "The fake SendGrid needs jsonschema: pip install 'nurture[testing]'"
        ) from exc
    return jsonschema.Draft202012Validator(
        load_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


class Validator:
    """Every problem SendGrid would report for a body, and its number of recipients.

    ``validate``: ``"full"`` runs the schema over the whole body; ``"sample"`` over the
    envelope and the first ``SAMPLE_SIZE`` personalizations only. ``refuse_addresses``
    (lower-case) are reported as invalid addresses, named in the error's ``field``
    unless ``error_fields`` is off. The three may be changed between requests.
    """

    def __init__(
        self,
        *,
        validate: Literal["full", "sample"] = "full",
        refuse_addresses: Iterable[str] = (),
        error_fields: bool = True,
    ) -> None:
        self.validate = validate
        self.refuse_addresses = {a.lower() for a in refuse_addresses}
        self.error_fields = error_fields
        self._schema = _schema_validator()

    def check(self, body: Any) -> tuple[list[Error], int]:
        """The problems with ``body`` (at most 50, as SendGrid) and its number of recipients."""
        if not isinstance(body, dict):
            return [error("The request body must be a JSON object.", None)], 0
        target = body
        personalizations = body.get("personalizations")
        sampled = (
            self.validate == "sample"
            and isinstance(personalizations, list)
            and len(personalizations) > rules.SAMPLE_SIZE
        )
        if sampled and isinstance(personalizations, list):
            target = {**body, "personalizations": personalizations[: rules.SAMPLE_SIZE]}
        errors = [
            error(e.message, ".".join(str(p) for p in e.absolute_path) or None)
            for e in self._schema.iter_errors(target)
        ]
        found, count = self._rules(body, sampled=sampled)
        errors.extend(found)
        return errors[:50], count

    def _rules(self, body: dict[str, Any], *, sampled: bool) -> tuple[list[Error], int]:
        """The rules the schema leaves out, applied to every personalization; and the count."""
        errors: list[Error] = []
        personalizations = body.get("personalizations")
        if not isinstance(personalizations, list):
            return errors, 0
        if sampled and len(personalizations) > rules.MAX_RECIPIENTS:
            errors.append(error("Too many personalizations (at most 1000).", "personalizations"))
        if "reply_to" in body and "reply_to_list" in body:
            errors.append(
                error("reply_to and reply_to_list cannot be used together.", "reply_to_list")
            )
        for field, party in rules.named_parties(body):
            if rules.BAD_NAME.search(str(party.get("name") or "")):
                errors.append(error("Names may not contain ';' or ','.", f"{field}.name"))
        errors.extend(rules.content_rules(body))
        errors.extend(rules.header_rules(body.get("headers"), "headers"))
        if rules.size(body.get("custom_args")) > rules.MAX_CUSTOM_ARGS_BYTES:
            errors.append(error("custom_args may not exceed 10,000 bytes.", "custom_args"))
        errors.extend(rules.send_at_rule(body.get("send_at"), "send_at"))
        total = 0
        for i, item in enumerate(personalizations):
            # Most personalizations are plainly fine; only the others get a close look.
            count = self._quick_count(item)
            if count is None:
                count, found = self._inspect(i, item, strict=sampled and i >= rules.SAMPLE_SIZE)
                errors.extend(found)
            total += count
        if total > rules.MAX_RECIPIENTS:
            errors.append(
                error(
                    f"The total number of recipients must be at most 1000 (got {total}).",
                    "personalizations",
                )
            )
        if (
            not body.get("subject")
            and not body.get("template_id")
            and not all(isinstance(p, dict) and p.get("subject") for p in personalizations)
        ):
            errors.append(error("The subject is required.", "subject"))
        return errors, total

    def _quick_count(self, item: Any) -> int | None:
        """The recipients of a personalization that plainly breaks no rule, else ``None``.

        The benchmark's hot path (a million personalizations): conservative, so that
        ``None`` only means "look closer" with :meth:`_inspect`.
        """
        if type(item) is not dict:
            return None
        emails = []
        for kind in ("to", "cc", "bcc"):
            parties = item.get(kind)
            if parties is None:
                if kind == "to":
                    return None
                continue
            if type(parties) is not list:
                return None
            for party in parties:
                email = party.get("email") if type(party) is dict else None
                if type(email) is not str or "@" not in email:
                    return None
                name = party.get("name")
                if name is not None and (type(name) is not str or "," in name or ";" in name):
                    return None
                emails.append(email)
        if self.refuse_addresses or len(emails) > 1:
            lowered = {e.lower() for e in emails}
            if len(lowered) != len(emails) or not self.refuse_addresses.isdisjoint(lowered):
                return None
        headers = item.get("headers")
        if headers is not None and not (
            rules.small_strings(headers, 1 << 30)
            and rules.RESERVED_HEADERS.isdisjoint(map(str.lower, headers))
        ):
            return None
        substitutions = item.get("substitutions")
        if substitutions is not None and not rules.small_strings(
            substitutions, rules.MAX_SUBSTITUTION_BYTES
        ):
            return None
        args = item.get("custom_args")
        if args is not None and not rules.small_strings(args, rules.MAX_CUSTOM_ARGS_BYTES):
            return None
        if "send_at" in item:
            return None
        return len(emails)

    def _inspect(self, i: int, item: Any, *, strict: bool) -> tuple[int, list[Error]]:
        """Recipient count and every rule a personalization breaks.

        ``strict`` adds the structural checks the schema makes, for personalizations the
        schema did not see (past the sample).
        """
        where = f"personalizations.{i}"
        if not isinstance(item, dict):
            return 0, [error("A personalization must be an object.", where)] if strict else []
        errors: list[Error] = []
        count = 0
        seen: set[str] = set()
        for kind in ("to", "cc", "bcc"):
            parties = item.get(kind)
            if parties is None:
                if kind == "to" and strict:
                    errors.append(error("The to field is required.", f"{where}.to"))
                continue
            if not isinstance(parties, list):
                if strict:
                    errors.append(error(f"{kind} must be an array.", f"{where}.{kind}"))
                continue
            count += len(parties)
            for j, party in enumerate(parties):
                errors.extend(self._party_rules(party, f"{where}.{kind}.{j}", seen))
        errors.extend(rules.personalization_rules(item, where, strict=strict))
        return count, errors

    def _party_rules(self, party: Any, field: str, seen: set[str]) -> list[Error]:
        """One recipient: an address, not refused, not repeated, with a clean name."""
        if not isinstance(party, dict) or not isinstance(party.get("email"), str):
            return [error("Each recipient must have an email.", f"{field}.email")]
        email = party["email"].lower()
        errors = []
        if "@" not in email or email in self.refuse_addresses:
            where = f"{field}.email" if self.error_fields else None
            errors.append(error("Does not contain a valid address.", where))
        if email in seen:
            errors.append(
                error(
                    "Each email address in the personalization block should be unique "
                    "between to, cc, and bcc.",
                    f"{field}.email",
                )
            )
        seen.add(email)
        if rules.BAD_NAME.search(str(party.get("name") or "")):
            errors.append(error("Names may not contain ';' or ','.", f"{field}.name"))
        return errors
