"""``nurture subscribers import``: people who consented elsewhere, only with evidence.

A row without a consent source and date is refused and listed, never imported. The
file is streamed and inserted in batches, so its size does not matter; a file that
cannot be read as UTF-8 CSV is refused whole, before anything is imported. Reports
name the file and CSV line numbers, never addresses: the operator has the file.

Everything ``nurture subscribers export`` writes reads back here (:data:`EXPORT_COLUMNS`):
an export imported into a fresh database gives the same people with the same statuses
and consent evidence, and unsubscribed people come back unsubscribed and suppressed.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from tqdm import tqdm

from nurture.exceptions import SubscriptionError
from nurture.mail.tokens import new_public_id
from nurture.settings import Settings
from nurture.store import consents as consent_ops
from nurture.store import enrolments as enrolment_ops
from nurture.store import subscribers as subscriber_ops
from nurture.store import suppressions as suppression_ops
from nurture.store.statuses import SubscriberStatus
from nurture.subscriptions.validation import clean_first_name, clean_timezone, normalise_address

BATCH = 500
REQUIRED_COLUMNS = ("email", "consent_source", "consent_date")
#: What ``export`` writes, in order; every column is one ``import`` reads back.
EXPORT_COLUMNS = (
    "email",
    "first_name",
    "status",
    "timezone",
    "newsletters",
    "campaign",
    "campaign_step",
    "consent_source",
    "consent_date",
    "created_at",
    "confirmed_at",
    "unsubscribed_at",
)
_STATUSES = {s.value for s in SubscriberStatus}
_YES = {"", "yes", "y", "true", "1", "on"}
_NO = {"no", "n", "false", "0", "off"}

#: What makes a spreadsheet read a cell as a formula (OWASP's list, and the full-width
#: forms some spreadsheets also accept).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def protect(value: str) -> str:
    """Neutralises text a spreadsheet would run as a formula: prefixed with ``'``."""
    return "'" + value if value.startswith(FORMULA_START) else value


def unprotect(value: str) -> str:
    """The text :func:`protect` was given (a cell ``'=…`` reads back as ``=…``)."""
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_START) else value


@dataclass
class ImportReport:
    """What an import did, by CSV line number (the header is line 1) in ``path``."""

    path: str = ""
    imported: int = 0
    #: Rows not imported for a problem in the row: (line, reason).
    refused: list[tuple[int, str]] = field(default_factory=list)
    #: Rows skipped because the address is suppressed (unsubscribed, erased, bounced).
    suppressed: list[int] = field(default_factory=list)
    #: Rows skipped because the address is a subscriber already (or repeated in the file).
    existing: list[int] = field(default_factory=list)
    #: Imported rows with a remark (an unknown campaign: imported without enrolment).
    warnings: list[tuple[int, str]] = field(default_factory=list)

    def summary(self) -> str:
        """A human-readable report: the counts, then ``FILE:LINE: ...`` per row not imported."""
        at = f"{self.path}:" if self.path else "line "
        lines = [
            f"imported: {self.imported}",
            f"refused: {len(self.refused)}",
            f"suppressed (skipped): {len(self.suppressed)}",
            f"already subscribed (skipped): {len(self.existing)}",
        ]
        lines += [f"{at}{line}: refused: {reason}" for line, reason in self.refused]
        lines += [f"{at}{line}: suppressed, not imported" for line in self.suppressed]
        lines += [f"{at}{line}: already subscribed, not imported" for line in self.existing]
        lines += [f"{at}{line}: {remark}" for line, remark in self.warnings]
        return "\n".join(lines)


@dataclass(frozen=True)
class _Person:
    line: int
    email: str
    first_name: str | None
    timezone: str | None
    source: str
    consented_at: datetime
    campaign: str | None
    newsletters: bool
    status: SubscriberStatus = SubscriberStatus.CONFIRMED
    #: The sequence's next step (0: from the start); ``None``: not enrolled (it is over).
    next_step: int | None = 0
    unsubscribed_at: datetime | None = None


class _Progress(io.RawIOBase):
    """A binary file that advances a progress bar by the bytes read (the CSV streams)."""

    def __init__(self, raw: io.BufferedReader, bar: tqdm[Any] | None) -> None:
        self._raw = raw
        self._bar = bar

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer)
        if self._bar is not None and count:
            self._bar.update(count)
        return count or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


def import_csv(
    engine: Engine,
    settings: Settings,
    path: Path | str,
    now: datetime,
    progress: bool = False,
    *,
    campaigns: set[str] | None = None,
) -> ImportReport:
    """Imports people with consent evidence as confirmed subscribers; see :class:`ImportReport`.

    Columns: ``email``, ``first_name``, ``timezone``, ``consent_source``,
    ``consent_date`` (ISO date or date-time; UTC when it has no offset), ``campaign``
    (optional: enrols with the first step due at ``now`` when it names a campaign),
    ``newsletters`` (optional, yes/no, default yes), and what ``export`` adds:
    ``status`` (``confirmed`` by default, ``pending`` or ``unsubscribed``: an
    unsubscribed person is suppressed and never enrolled), ``unsubscribed_at`` and
    ``campaign_step`` (how many steps were done, or ``done``: the sequence is over and
    is not restarted). A cell ``export`` protected with ``'`` reads back without it.
    Each imported person gets a consent record (action and channel ``import``, the
    source and date in ``detail``).
    ``campaigns`` is the set of known slugs (default: read from the campaign files).
    Raises :class:`SubscriptionError` (its message names the file, and the line when
    there is one) when the file cannot be read, is not UTF-8 CSV, or lacks a required
    column; nothing is imported then.
    """
    if campaigns is None:
        from nurture.campaigns import load_catalogue

        campaigns = set(load_catalogue(settings).campaigns)
    report = ImportReport(path=str(path))
    try:
        _check_file(path)  # a file refused whole must not be half imported
        size = os.path.getsize(path)
        with (
            tqdm(total=size, unit="B", unit_scale=True, disable=not progress, desc="import") as bar,
            io.TextIOWrapper(
                io.BufferedReader(_Progress(open(path, "rb"), bar)),
                encoding="utf-8-sig",
                newline="",
            ) as text,
        ):
            reader = csv.DictReader(text)
            header = [name.strip().lower() for name in reader.fieldnames or []]
            missing = [name for name in REQUIRED_COLUMNS if name not in header]
            if missing:
                raise SubscriptionError(f"{path}: the CSV has no column {', '.join(missing)}")
            reader.fieldnames = header
            for batch in _batches(_people(reader, report, campaigns, now)):
                _import_batch(engine, settings, batch, report, now)
    except OSError as exc:
        raise SubscriptionError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    return report


def _check_file(path: Path | str) -> None:
    """Reads the whole file as UTF-8 CSV; raises :class:`SubscriptionError` at the first fault.

    Raises ``OSError`` when the file cannot be opened or read.
    """
    with open(path, encoding="utf-8-sig", newline="") as text:
        reader = csv.reader(text)
        try:
            for _ in reader:
                pass
        except UnicodeDecodeError:
            line = _undecodable_line(path)
            raise SubscriptionError(
                f"{path}:{line}: not UTF-8 text; save the file as CSV UTF-8 and try again"
            ) from None
        except csv.Error as exc:
            raise SubscriptionError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None


def _undecodable_line(path: Path | str) -> int:
    """The (physical) line number of the first byte sequence that is not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open(path, "rb") as raw:
        while piece := raw.readline(1 << 16):
            try:
                decoder.decode(piece)
            except UnicodeDecodeError:
                return line
            line += piece.endswith(b"\n")
    return line


def _people(
    reader: csv.DictReader[str], report: ImportReport, campaigns: set[str], now: datetime
) -> Iterator[_Person]:
    for raw in reader:
        line = reader.line_num
        row = {k: unprotect((v or "").strip()) for k, v in raw.items() if isinstance(k, str)}
        if not any(row.values()):
            continue
        problem, person = _parse(row, line, campaigns, now, report)
        if problem:
            report.refused.append((line, problem))
        elif person is not None:
            yield person


def _parse(
    row: dict[str, str], line: int, campaigns: set[str], now: datetime, report: ImportReport
) -> tuple[str | None, _Person | None]:
    source, when = row.get("consent_source", ""), row.get("consent_date", "")
    if not source or not when:
        return "no consent evidence (consent_source and consent_date are required)", None
    consented_at = _parse_date(when)
    if consented_at is None:
        return "consent_date is not an ISO date (or out of range)", None
    if consented_at > now + timedelta(days=1):
        return "consent_date is in the future", None
    try:
        email = normalise_address(row.get("email", ""))
    except SubscriptionError:
        return "invalid email address", None
    wants = row.get("newsletters", "").lower()
    if wants not in _YES | _NO:
        return "newsletters must be yes or no", None
    status = row.get("status", "").lower() or SubscriberStatus.CONFIRMED
    if status not in _STATUSES:
        return "status must be confirmed, pending or unsubscribed", None
    unsubscribed_at = _parse_date(row.get("unsubscribed_at", "")) or consented_at
    step = row.get("campaign_step", "").lower()
    if step not in ("", "done") and not (step.isdigit() and len(step) < 6):
        return "campaign_step must be a number of steps or done", None
    campaign = row.get("campaign") or None
    if campaign is not None and campaign not in campaigns:
        report.warnings.append((line, f"unknown campaign {campaign!r}: imported without it"))
        campaign = None
    return None, _Person(
        line=line,
        email=email,
        first_name=clean_first_name(row.get("first_name") or None),
        timezone=clean_timezone(row.get("timezone")),
        source=_printable(source)[:200],
        consented_at=consented_at,
        campaign=campaign,
        newsletters=wants in _YES,
        status=SubscriberStatus(status),
        next_step=None if step == "done" or status != "confirmed" else int(step or 0),
        unsubscribed_at=unsubscribed_at if status == "unsubscribed" else None,
    )


def _parse_date(value: str) -> datetime | None:
    """The instant an ISO date or date-time names, in UTC; ``None`` when it names none.

    ``0001-01-01T00:00:00+14:00`` is well formed but before year 1 in UTC: ``None`` too.
    """
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(value), time())
        except ValueError:
            return None
    try:
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _printable(value: str) -> str:
    """``value`` with control characters (NUL: PostgreSQL refuses it) made spaces."""
    return "".join(" " if unicodedata.category(ch) in {"Cc", "Cs"} else ch for ch in value)


def _batches(people: Iterator[_Person]) -> Iterator[list[_Person]]:
    batch: list[_Person] = []
    for person in people:
        batch.append(person)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _import_batch(
    engine: Engine, settings: Settings, batch: list[_Person], report: ImportReport, now: datetime
) -> None:
    """One transaction per batch: a failed run resumes by importing the file again."""
    with engine.begin() as conn:
        unique: dict[str, _Person] = {}
        for person in batch:
            if person.email in unique:
                report.existing.append(person.line)
            else:
                unique[person.email] = person
        known = subscriber_ops.existing_emails(conn, list(unique))
        suppressed = suppression_ops.suppressed_among(conn, settings, unique)
        fresh = []
        for email, person in unique.items():
            if email in suppressed:
                report.suppressed.append(person.line)
            elif email in known:
                report.existing.append(person.line)
            else:
                fresh.append(person)
        ids = subscriber_ops.create_many(
            conn,
            [
                {
                    "public_id": new_public_id(),
                    "email": p.email,
                    "first_name": p.first_name,
                    "timezone": p.timezone,
                    "status": p.status,
                    "newsletters": p.newsletters,
                    "source_campaign": p.campaign,
                    "created_at": now,
                    "confirmed_at": None if p.status == "pending" else p.consented_at,
                    "unsubscribed_at": p.unsubscribed_at,
                }
                for p in fresh
            ],
        )
        created = [p for p in fresh if p.email in ids]
        # Inserted by someone else between our check and our insert: known after all.
        report.existing.extend(p.line for p in fresh if p.email not in ids)
        consent_ops.record_many(
            conn,
            [
                {
                    "subscriber_id": ids[p.email],
                    "action": "import",
                    "channel": "import",
                    "now": now,
                    "campaign": p.campaign,
                    "detail": f"source: {p.source}; consented: {p.consented_at.isoformat()}",
                }
                for p in created
            ],
        )
        enrolment_ops.enrol_many(
            conn,
            [
                {"subscriber_id": ids[p.email], "campaign": p.campaign, "next_step": p.next_step}
                for p in created
                if p.campaign and p.next_step is not None
            ],
            now=now,
        )
        for p in created:
            if p.status == SubscriberStatus.UNSUBSCRIBED:
                # They left before: they stay out, as they would have in the old database.
                at = p.unsubscribed_at or now
                suppression_ops.add(conn, settings, p.email, reason="unsubscribe", now=at)
                consent_ops.record(
                    conn, subscriber_id=ids[p.email], action="withdraw", channel="import", now=at
                )
        report.imported += len(created)
