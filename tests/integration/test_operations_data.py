"""The operator's data (issue 12): backups during sends, an export that imports back,
retention under an injected clock, a sign-up limit shared by processes, counted logs."""

from __future__ import annotations

import csv
import io
import logging
import threading
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, insert, select

from nurture.runtime import jobs
from nurture.runtime.services import Services
from nurture.settings import Settings
from nurture.store import backup, database
from nurture.store import suppressions as suppression_ops
from nurture.store.schema import consents, outbox, subscribers, webhook_events
from nurture.subscriptions import export, gdpr, importing
from nurture.testing import FakeClock, FakeProvider
from tests.helpers import (
    CAMPAIGN,
    NOW,
    T0,
    confirmed,
    make_service,
    queue_newsletter,
    request,
    rows,
    serve_app,
    services_for,
    subscriber,
)

# nurture db backup while the service sends -----------------------------------------


def test_a_backup_taken_during_sends_restores_and_reads(
    settings: Settings, sqlite_engine: Engine, tmp_path: Path
) -> None:
    emails = queue_newsletter(sqlite_engine, 3000)
    clock = FakeClock(NOW)
    services = services_for(
        settings.model_copy(update={"dispatch_batch_size": 50}),
        sqlite_engine,
        clock,
        FakeProvider(),
    )
    sending = threading.Thread(target=jobs.dispatch, args=(services,))
    sending.start()
    copies = []
    try:
        for n in range(3):
            copy = tmp_path / f"backup-{n}.db"
            revision = backup.backup_sqlite(str(sqlite_engine.url), copy)
            copies.append((copy, revision))
    finally:
        sending.join(120)
    assert not sending.is_alive()

    head = rows(sqlite_engine, subscribers)
    for copy, revision in copies:
        assert revision == backup.schema_version(copy)
        restored = settings.model_copy(update={"database_url": f"sqlite:///{copy}"})
        database.upgrade(restored.resolved_database_url)  # already at head: nothing to do
        engine = database.make_engine(restored.resolved_database_url)
        with engine.connect() as conn:
            people = conn.execute(select(func.count()).select_from(subscribers)).scalar()
            states = dict(
                conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status)).all()
            )
        assert people == len(emails) == len(head)
        # One consistent moment: every row is accounted for, whatever it was doing.
        assert sum(states.values()) == len(emails)
        assert set(states) <= {"queued", "sending", "sent"}
        engine.dispose()
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(func.count()).where(outbox.c.status == "sent")).scalar() == 3000


def test_a_backup_refuses_to_overwrite_its_source(sqlite_engine: Engine) -> None:
    source = Path(str(sqlite_engine.url.database))
    with pytest.raises(backup.BackupError):
        backup.backup_sqlite(str(sqlite_engine.url), source)


# Export -> import ------------------------------------------------------------------


def _export(engine: Engine) -> list[dict[str, str]]:
    out = io.StringIO()
    export.export_csv(engine, out)
    return list(csv.DictReader(io.StringIO(out.getvalue())))


def test_an_export_imports_into_a_fresh_database_unchanged(
    settings: Settings, engine: Engine, sqlite_engine: Engine, tmp_path: Path
) -> None:
    service = make_service(settings, engine)
    confirmed(service, "jane@example.com")
    left = confirmed(service, "left@example.com")
    service.unsubscribe(
        service.tokens.make("unsubscribe", left.public_id, now=T0),
        channel="link",
        now=T0 + timedelta(hours=1),
    )
    service.sign_up(request("pending@example.com", first_name="=Pat"), now=T0)
    old = tmp_path / "old.csv"
    old.write_text(
        "email,consent_source,consent_date,campaign,newsletters\n"
        "paper@example.com,paper form at the practice,2025-05-01,,no\n"
    )
    assert gdpr.import_csv(engine, settings, old, T0, campaigns={CAMPAIGN}).imported == 1
    before = _export(engine)
    path = tmp_path / "export.csv"
    path.write_text(_as_csv(before))

    report = gdpr.import_csv(sqlite_engine, settings, path, T0 + timedelta(days=1))

    assert (report.imported, report.refused, report.suppressed) == (4, [], [])
    after = _export(sqlite_engine)
    same = [
        "email",
        "first_name",
        "status",
        "timezone",
        "newsletters",
        "campaign",
        "campaign_step",
        "consent_source",
        "consent_date",
        "confirmed_at",
        "unsubscribed_at",
    ]
    assert [{k: r[k] for k in same} for r in after] == [{k: r[k] for k in same} for r in before]
    by_email = {r["email"]: r for r in after}
    assert by_email["left@example.com"]["status"] == "unsubscribed"
    assert by_email["pending@example.com"]["first_name"] in ("", "'=Pat")
    assert by_email["paper@example.com"]["consent_source"] == "paper form at the practice"
    assert by_email["jane@example.com"]["consent_source"].startswith("double opt-in (form)")
    with sqlite_engine.connect() as conn:
        assert suppression_ops.is_suppressed(conn, settings, "left@example.com")
        assert not suppression_ops.is_suppressed(conn, settings, "jane@example.com")
    # Still out: importing the file again, or a plain sign-up, brings nobody back.
    again = gdpr.import_csv(sqlite_engine, settings, path, T0 + timedelta(days=2))
    assert again.imported == 0
    assert subscriber(sqlite_engine, "left@example.com").status == "unsubscribed"


def _as_csv(records: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(importing.EXPORT_COLUMNS))
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


def test_import_refuses_an_unknown_status(
    settings: Settings, sqlite_engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        "email,consent_source,consent_date,status\na@example.com,form,2025-01-01,gone\n"
    )
    report = gdpr.import_csv(sqlite_engine, settings, path, T0, campaigns=set())
    assert report.refused == [(2, "status must be confirmed, pending or unsubscribed")]


# Retention -------------------------------------------------------------------------


def _services(settings: Settings, engine: Engine, clock: FakeClock) -> Services:
    return services_for(settings, engine, clock, FakeProvider())


def test_unsubscribed_data_is_erased_after_30_days_and_the_suppression_holds(
    settings: Settings, engine: Engine
) -> None:
    clock = FakeClock(T0)
    services = _services(settings, engine, clock)
    service = services.subscriptions
    left = confirmed(service, "left@example.com", now=T0)
    stays = confirmed(service, "stays@example.com", now=T0)
    token = services.tokens.make("unsubscribe", left.public_id, now=T0)
    service.unsubscribe(token, channel="link", now=T0)
    with engine.begin() as conn:
        for n, at in enumerate((T0, T0 + timedelta(days=25))):
            conn.execute(
                insert(webhook_events).values(
                    event_id=f"e{n}", provider="sendgrid", event="delivered", received_at=at
                )
            )

    clock.advance(days=29)
    jobs.housekeeping(services)
    assert subscriber(engine, "left@example.com") is not None  # not yet

    clock.advance(days=1, minutes=1)
    jobs.housekeeping(services)

    assert subscriber(engine, "left@example.com") is None
    assert subscriber(engine, "stays@example.com").id == stays.id
    assert [e.event_id for e in rows(engine, webhook_events)] == ["e1"]
    assert gdpr.show(engine, settings, "left@example.com") == {
        "subscriber": None,
        "consents": [],
        "enrolments": [],
        "outbox": [],
        "suppression": {"reason": "unsubscribe", "since": T0.isoformat()},
    }
    erased = [c for c in rows(engine, consents) if c.subscriber_id is None]
    assert {c.action for c in erased} >= {"erase"} and all(c.ip is None for c in erased)
    # A later sign-up is a stranger's: a fresh double opt-in, nothing sent but the confirmation.
    outbox_id = service.sign_up(request("left@example.com"), now=clock.now())
    again = subscriber(engine, "left@example.com")
    assert again.status == "pending" and outbox_id is not None
    assert rows(engine, outbox, outbox.c.id == outbox_id)[0].kind == "confirmation"
    with engine.connect() as conn:
        assert suppression_ops.is_suppressed(conn, settings, "left@example.com")


def test_a_bounced_subscriber_is_erased_too(settings: Settings, engine: Engine) -> None:
    clock = FakeClock(T0)
    services = _services(settings, engine, clock)
    bounced = confirmed(services.subscriptions, "bounced@example.com", now=T0)
    with engine.begin() as conn:
        services.subscriptions.withdraw(conn, bounced, channel="webhook", now=T0)
        suppression_ops.add(
            conn, settings, bounced.email, reason="bounce", now=T0, replace_reason=True
        )
    clock.advance(days=31)
    assert gdpr.apply_retention(engine, settings, clock.now()).erased == 1
    assert subscriber(engine, "bounced@example.com") is None
    assert gdpr.show(engine, settings, "bounced@example.com")["suppression"]["reason"] == "bounce"  # type: ignore[index]


# The sign-up rate limit ------------------------------------------------------------


def test_two_web_processes_share_the_sign_up_limit_on_postgresql(
    settings: Settings, database_url: str
) -> None:
    from nurture.web.app import create_app

    limited = settings.model_copy(update={"subscribe_rate_limit": 3})
    engines = [database.make_engine(database_url) for _ in range(2)]
    clock = FakeClock(T0)
    apps = [create_app(_services(limited, e, clock)) for e in engines]
    answers = []
    try:
        with serve_app(apps[0]) as first, serve_app(apps[1]) as second:
            for n in range(4):
                for base in (first, second):
                    answers.append(
                        httpx.post(
                            f"{base}/subscribe",
                            json={
                                "email": f"r{n}-{base[-5:]}@example.com",
                                "campaign": CAMPAIGN,
                                "consent": True,
                            },
                            timeout=10,
                        ).status_code
                    )
    finally:
        for engine in engines:
            engine.dispose()
    if engines[0].dialect.name == "postgresql":
        assert answers.count(202) == 3 and answers.count(429) == 5  # one limit for both
    else:
        assert answers.count(202) == 6 and answers.count(429) == 2  # each process its own


# Logs with counts ------------------------------------------------------------------


def test_plan_and_dispatch_lines_carry_counts_and_durations(
    settings: Settings, sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(T0)
    services = _services(settings, sqlite_engine, clock)
    confirmed(services.subscriptions, "jane@example.com", now=T0)
    confirmed(services.subscriptions, "sam@example.com", now=T0)
    with caplog.at_level(logging.INFO, logger="nurture.runtime.jobs"):
        jobs.tick(services)
    planned = next(r for r in caplog.records if r.getMessage().startswith("planned"))
    dispatched = next(r for r in caplog.records if r.getMessage().startswith("dispatched"))
    assert planned.getMessage().startswith("planned 2 sequence and 0 newsletter email(s)")
    assert planned.sequence == 2 and planned.duration_seconds >= 0  # type: ignore[attr-defined]
    # Two confirmations and two first steps.
    assert dispatched.getMessage().startswith("dispatched sent 4, failed 0,")
    assert " s (" in dispatched.getMessage()
    assert dispatched.sent == 4 and dispatched.duration_seconds >= 0  # type: ignore[attr-defined]
