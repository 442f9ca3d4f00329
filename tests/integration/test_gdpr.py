"""Show, erase, import and export a person's data, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, update

from nurture.exceptions import SubscriptionError
from nurture.settings import Settings
from nurture.store import suppressions as suppression_ops
from nurture.store.schema import (
    consents,
    enrolments,
    outbox,
    subscribers,
    suppressions,
    webhook_events,
)
from nurture.subscriptions import Subscriptions, export, gdpr, importing
from tests.helpers import (
    CAMPAIGN,
    T0,
    add_outbox,
    confirmed,
    make_service,
    request,
    rows,
    run_cli,
    subscriber,
)


@pytest.fixture
def service(settings: Settings, engine: Engine) -> Subscriptions:
    return make_service(settings, engine)


def test_show_gathers_everything_as_json(
    service: Subscriptions, engine: Engine, settings: Settings
) -> None:
    assert gdpr.show(engine, settings, "nobody@example.com") is None
    row = confirmed(service)
    add_outbox(engine, row.id, "01-welcome", "sent", provider_message_id="m-1", sent_at=T0)

    data = gdpr.show(engine, settings, " JANE@example.com ")

    assert data is not None
    json.dumps(data)  # serialisable as it is
    assert data["subscriber"]["email"] == "jane@example.com"
    assert data["subscriber"]["status"] == "confirmed"
    assert [c["action"] for c in data["consents"]] == ["opt_in", "confirm"]
    assert data["consents"][0]["ip"] == "203.0.113.7"
    assert [e["campaign"] for e in data["enrolments"]] == [CAMPAIGN]
    assert {m["kind"] for m in data["outbox"]} == {"confirmation", "sequence"}
    assert not any("html" in m or "text" in m or "body" in m for m in data["outbox"])
    assert data["suppression"] is None


def test_erase_keeps_only_a_keyed_hash(
    service: Subscriptions, engine: Engine, settings: Settings
) -> None:
    row = confirmed(service)
    queued = add_outbox(engine, row.id, "02-saying-it-out-loud", "queued")
    sent = add_outbox(engine, row.id, "01-welcome", "sent")
    other = confirmed(service, "other@example.com")
    later = T0 + timedelta(days=3)

    assert gdpr.erase(engine, settings, "Jane@Example.com", later) is True

    assert subscriber(engine) is None
    assert rows(engine, enrolments, enrolments.c.subscriber_id == row.id) == []
    mail = {m.id: m for m in rows(engine, outbox)}
    assert mail[queued].status == "cancelled" and mail[sent].status == "sent"
    assert mail[queued].subscriber_id is None and mail[sent].subscriber_id is None
    theirs = [c for c in rows(engine, consents) if c.subscriber_id is None]
    assert [c.action for c in theirs] == ["opt_in", "confirm", "erase"]
    assert all(c.ip is None and c.user_agent is None and c.form_url is None for c in theirs)
    assert rows(engine, consents, consents.c.subscriber_id == other.id)[0].ip == "203.0.113.7"
    [entry] = rows(engine, suppressions)
    assert entry.reason == "erased" and "jane" not in entry.email_hash
    assert gdpr.show(engine, settings, "jane@example.com") == {
        "subscriber": None,
        "consents": [],
        "enrolments": [],
        "outbox": [],
        "suppression": {"reason": "erased", "since": later.isoformat()},
    }
    # Unknown addresses are suppressed too: whoever asks for erasure wants no mail.
    assert gdpr.erase(engine, settings, "stranger@example.com", later) is False
    with engine.connect() as conn:
        assert suppression_ops.is_suppressed(conn, settings, "stranger@example.com")


def test_erase_then_sign_up_again_needs_a_fresh_confirmation(
    service: Subscriptions, engine: Engine, settings: Settings
) -> None:
    row = confirmed(service)
    service.unsubscribe(
        service.tokens.make("unsubscribe", row.public_id, now=T0), channel="link", now=T0
    )
    gdpr.erase(engine, settings, "jane@example.com", T0 + timedelta(days=1))
    assert rows(engine, suppressions)[0].reason == "erased"  # the stronger reason wins
    later = T0 + timedelta(days=2)

    assert service.sign_up(request(), now=later) is not None

    fresh = subscriber(engine)
    assert fresh.status == "pending" and fresh.public_id != row.public_id
    with engine.connect() as conn:
        assert suppression_ops.is_suppressed(conn, settings, "jane@example.com")
    # An import cannot bring the address back either.
    csv_path = _csv(
        settings.var_dir / "again.csv",
        ["jane@example.com,Jane,,newsletter form,2025-01-01,,"],
    )
    report = gdpr.import_csv(engine, settings, csv_path, later, campaigns={CAMPAIGN})
    assert report.imported == 0 and report.suppressed == [2]

    service.confirm(service.tokens.make("confirm", fresh.public_id, now=later), now=later)
    assert subscriber(engine).status == "confirmed"
    with engine.connect() as conn:
        assert not suppression_ops.is_suppressed(conn, settings, "jane@example.com")


HEADER = "email,first_name,timezone,consent_source,consent_date,campaign,newsletters"


def _csv(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def test_import_refuses_rows_without_consent_and_lists_them(
    service: Subscriptions,
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    confirmed(service, "known@example.com")
    with engine.begin() as conn:
        suppression_ops.add(conn, settings, "gone@example.com", reason="erased", now=T0)
    path = _csv(
        tmp_path / "people.csv",
        [
            "ann@example.com,Ann,Europe/Paris,old newsletter form,2024-05-01,what-i-actually-do,",
            "bob@example.com,Bob,,,2024-05-01,,",  # no source
            "cat@example.com,Cat,,workshop sign-up sheet,,,",  # no date
            "not-an-address,Dan,,workshop,2024-05-01,,",
            "gone@example.com,Gone,,workshop,2024-05-01,,",
            "known@example.com,Known,,workshop,2024-05-01,,",
            "ANN@example.com,Ann again,,workshop,2024-05-01,,",  # repeated in the file
            "eve@example.com,Eve,Nowhere/Else,workshop,2024-05-01T09:30:00+02:00,no-such,no",
            "fay@example.com,Fay,,workshop,yesterday,,",
            "gus@example.com,Gus,,workshop,2024-05-01,,perhaps",
            ",,,,,,",
        ],
    )
    monkeypatch.setattr(importing, "BATCH", 2)  # several batches, duplicates across them

    report = gdpr.import_csv(engine, settings, path, T0, progress=True, campaigns={CAMPAIGN})

    assert report.imported == 2
    assert [line for line, _ in report.refused] == [3, 4, 5, 10, 11]
    assert "consent" in dict(report.refused)[3] and "consent" in dict(report.refused)[4]
    assert report.suppressed == [6]
    assert sorted(report.existing) == [7, 8]
    assert [line for line, _ in report.warnings] == [9]
    summary = report.summary()
    assert f"{path}:3: refused: no consent evidence" in summary
    assert "@" not in summary  # line numbers, never addresses
    emails = {r.email for r in rows(engine, subscribers)}
    assert emails == {"known@example.com", "ann@example.com", "eve@example.com"}
    ann, eve = subscriber(engine, "ann@example.com"), subscriber(engine, "eve@example.com")
    assert (ann.status, ann.timezone, ann.newsletters) == ("confirmed", "Europe/Paris", True)
    assert (eve.timezone, eve.newsletters, eve.confirmed_at.hour) == (None, False, 7)
    [record] = rows(engine, consents, consents.c.subscriber_id == ann.id)
    assert (record.action, record.channel) == ("import", "import")
    assert "old newsletter form" in record.detail and "2024-05-01" in record.detail
    [enrolment] = rows(engine, enrolments, enrolments.c.subscriber_id == ann.id)
    assert (enrolment.campaign, enrolment.next_due_at) == (CAMPAIGN, T0)
    assert rows(engine, enrolments, enrolments.c.subscriber_id == eve.id) == []
    assert not any(m.subscriber_id in (ann.id, eve.id) for m in rows(engine, outbox))


def test_import_needs_the_consent_columns(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "bare.csv"
    path.write_text("email,first_name\nann@example.com,Ann\n", encoding="utf-8")
    with pytest.raises(SubscriptionError, match="consent_source"):
        gdpr.import_csv(engine, settings, path, T0, campaigns=set())
    assert rows(engine, subscribers) == []


def test_export_streams_every_subscriber(service: Subscriptions, engine: Engine) -> None:
    confirmed(service)
    service.sign_up(request("mal@example.com"), now=T0)
    # Sign-up drops such a name now; older data or another path may still hold one.
    with engine.begin() as conn:
        conn.execute(
            update(subscribers)
            .where(subscribers.c.email == "mal@example.com")
            .values(first_name="=HYPERLINK(1)")
        )
    out = io.StringIO()

    assert export.export_csv(engine, out) == 2

    exported = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(exported[0]) == list(gdpr.EXPORT_COLUMNS)
    jane, mal = exported
    assert (jane["email"], jane["status"], jane["newsletters"]) == (
        "jane@example.com",
        "confirmed",
        "yes",
    )
    assert jane["campaign"] == CAMPAIGN and jane["confirmed_at"].startswith("2026-03-02")
    assert mal["first_name"] == "'=HYPERLINK(1)" and mal["confirmed_at"] == ""


def test_export_neutralises_every_text_cell(service: Subscriptions, engine: Engine) -> None:
    # Valid addresses, every one: email-validator accepts them.
    formulas = ["=cmd|'/Ccalc'!A0@example.com", "+1+1@example.com", "-2+3@example.com"]
    for email in formulas:
        service.sign_up(request(email), now=T0)
    with engine.begin() as conn:
        conn.execute(
            update(subscribers)
            .where(subscribers.c.email == formulas[0].lower())
            .values(timezone="\t=1+1", source_campaign="@SUM(A1)", first_name="\uff1dcmd")
        )
    out = io.StringIO()

    export.export_csv(engine, out)

    exported = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [row["email"] for row in exported] == ["'" + e.lower() for e in formulas]
    first = exported[0]
    assert (first["timezone"], first["campaign"], first["first_name"]) == (
        "'\t=1+1",
        "'@SUM(A1)",
        "'\uff1dcmd",
    )
    for row in exported:
        for value in row.values():
            assert value == "" or value[0] not in "=+-@\t\r\uff1d", value


def test_erase_clears_error_texts_that_may_quote_the_address(
    service: Subscriptions, engine: Engine, settings: Settings
) -> None:
    row = confirmed(service)
    bounced = add_outbox(
        engine, row.id, "01-welcome", "failed", error="550 jane@example.com: no such user"
    )
    other = confirmed(service, "other@example.com")
    theirs = add_outbox(
        engine, other.id, "01-welcome", "failed", error="550 other@example.com: no such user"
    )
    with engine.begin() as conn:
        for event_id, outbox_id, detail in (
            ("e1", bounced, "bounce: jane@example.com unknown"),
            ("e2", theirs, "bounce: other@example.com unknown"),
        ):
            conn.execute(
                insert(webhook_events).values(
                    event_id=event_id,
                    provider="sendgrid",
                    event="bounce",
                    outbox_id=outbox_id,
                    occurred_at=T0,
                    received_at=T0,
                    detail=detail,
                )
            )

    gdpr.erase(engine, settings, "jane@example.com", T0 + timedelta(days=1))

    mail = {m.id: m for m in rows(engine, outbox)}
    assert mail[bounced].error is None and mail[bounced].status == "failed"
    assert "jane" not in " ".join(m.error or "" for m in mail.values())
    assert mail[theirs].error == "550 other@example.com: no such user"
    events = {e.event_id: e.detail for e in rows(engine, webhook_events)}
    assert events == {"e1": None, "e2": "bounce: other@example.com unknown"}


def test_import_of_a_file_that_is_not_utf8_imports_nothing(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        b"email,consent_source,consent_date\n"
        b"ok@example.com,src,2025-01-01\n"
        b"\xff\xfe bad,src,2025-01-01\n"
    )
    with pytest.raises(SubscriptionError) as caught:
        gdpr.import_csv(engine, settings, path, T0, campaigns=set())
    assert f"{path}:3:" in str(caught.value) and "UTF-8" in str(caught.value)
    assert rows(engine, subscribers) == []  # refused whole, not half imported


def test_import_of_a_missing_or_broken_file_says_so(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.csv"
    with pytest.raises(SubscriptionError, match=r"missing\.csv: cannot read"):
        gdpr.import_csv(engine, settings, missing, T0, campaigns=set())
    with pytest.raises(SubscriptionError, match="cannot read"):
        gdpr.import_csv(engine, settings, tmp_path, T0, campaigns=set())  # a directory
    huge = tmp_path / "huge.csv"
    huge.write_text(
        "email,consent_source,consent_date\n"
        "ok@example.com,src,2025-01-01\n"
        f'a@example.com,"{"x" * 200_000}",2025-01-01\n'
    )
    with pytest.raises(SubscriptionError, match=r"huge\.csv:3: not valid CSV"):
        gdpr.import_csv(engine, settings, huge, T0, campaigns=set())
    assert rows(engine, subscribers) == []


def test_import_refuses_dates_out_of_range_and_cleans_text(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    path = _csv(
        tmp_path / "odd.csv",
        [
            "far@example.com,,,src,0001-01-01T00:00:00+14:00,,",
            "bad@example.com,,,src,2025-13-01T99,,",
            'nul@example.com,Ann\x00,,"paper\x00form",2025-01-01,,',
        ],
    )

    report = gdpr.import_csv(engine, settings, path, T0, campaigns=set())

    assert [line for line, _ in report.refused] == [2, 3]
    assert "consent_date" in dict(report.refused)[2]
    assert report.imported == 1
    imported = subscriber(engine, "nul@example.com")
    assert imported.first_name is None
    [record] = rows(engine, consents, consents.c.subscriber_id == imported.id)
    assert "\x00" not in record.detail and "paper form" in record.detail


def test_the_import_command_reports_bad_files_without_a_traceback(
    database_url: str, tmp_path: Path
) -> None:
    # The command migrates its database itself: on SQLite give it a fresh file (the
    # fixture's was made without migrations); the PostgreSQL schema is migrated already.
    if database_url.startswith("sqlite"):
        database_url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"NURTURE_DATABASE_URL": database_url}
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"email,consent_source,consent_date\n\xff,src,2025-01-01\n")
    dates = tmp_path / "dates.csv"
    dates.write_text(
        "email,consent_source,consent_date\nz@example.com,src,0001-01-01T00:00:00+14:00\n"
    )
    for args, expected in (
        (("subscribers", "import", str(bad)), f"{bad}:2: not UTF-8"),
        (("subscribers", "import", str(tmp_path / "missing.csv")), "missing.csv: cannot read"),
        (("subscribers", "import", str(dates)), f"{dates}:2: refused: consent_date"),
    ):
        result = run_cli(tmp_path, *args, env=env)
        output = result.stdout + result.stderr
        assert result.returncode == 1, output
        assert expected in output and "Traceback" not in output
