"""What each ``nurture`` command does, on top of the core (the CLI only parses)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from nurture.clock import utcnow
from nurture.delivery import planning
from nurture.logs import mask_email
from nurture.providers.base import Outcome
from nurture.runtime.signals import StopSignals
from nurture.settings import Settings
from nurture.store import database


def print_json(data: object) -> None:
    print(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def _engine(settings: Settings) -> Engine:
    database.upgrade(settings.resolved_database_url)
    return database.make_engine(settings.resolved_database_url)


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    web: bool,
    scheduler: bool,
    signals: StopSignals | None = None,
) -> int:
    from nurture.runtime.server import serve as run
    from nurture.runtime.services import build_services

    database.upgrade(settings.resolved_database_url)
    services = build_services(settings)
    return run(services, host=host, port=port, web=web, scheduler=scheduler, signals=signals)


def check(settings: Settings) -> int:
    from nurture.campaigns.check import check as run_check

    problems = run_check(settings)
    for problem in problems:
        print(problem)
    errors = sum(1 for p in problems if p.severity == "error")
    warnings = len(problems) - errors
    print(f"{errors} error(s), {warnings} warning(s)", file=sys.stderr)
    return 1 if errors else 0


def preview(settings: Settings, campaign: str, step: str | None, out: Path | None) -> int:
    from nurture.campaigns import load_catalogue
    from nurture.rendering.preview import write_preview

    catalogue = load_catalogue(settings)
    paths = write_preview(settings, catalogue, campaign, step, out or settings.var_dir / "preview")
    for path in paths:
        print(path)
    return 0


def send_test(settings: Settings, campaign: str, step: str, to: str) -> int:
    from nurture.campaigns import load_catalogue
    from nurture.mail.messages import Batch
    from nurture.mail.recipients import RecipientFactory
    from nurture.mail.tokens import Tokens
    from nurture.providers import make_provider
    from nurture.rendering import Renderer

    catalogue = load_catalogue(settings)
    content = Renderer(settings, catalogue).compile(campaign, step)
    recipient = RecipientFactory(settings, Tokens.from_settings(settings)).marketing(
        email=to,
        public_id="test-send",  # no such subscriber: its links open the "invalid link" page
        first_name=None,
        fallback=catalogue.first_name_fallback(campaign),
        outbox_id=None,
    )
    sender = catalogue.sender(campaign, settings)
    results = make_provider(settings).send(
        Batch(content, sender, [recipient], subject_prefix="[TEST] ")
    )
    for result in results:
        print(f"{mask_email(to)}: {result.outcome} {result.message_id or result.error or ''}")
    return 0 if all(r.outcome == Outcome.SENT for r in results) else 1


def tick(settings: Settings, *, at: datetime | None, dry_run: bool) -> int:
    from nurture.campaigns import load_catalogue
    from nurture.runtime import jobs
    from nurture.runtime.services import build_services

    if dry_run:
        engine = _engine(settings)
        catalogue = load_catalogue(settings)
        items = planning.preview(engine, catalogue, settings, now=at or utcnow())
        for item in items:
            print(f"{item.due_at.isoformat()}  {item.campaign}/{item.step}  {item.who}")
        print(f"{len(items)} email(s) would go out by {(at or utcnow()).isoformat()}")
        return 0
    if at is not None:
        # Sending "as of" another instant has no honest use: the future sends tomorrow's
        # mail today, and the past would stamp leases and waiting times in the past, so
        # housekeeping would requeue mail that just left. A plain tick catches up anyway.
        print(
            "nurture: --at only goes with --dry-run (a real tick always runs as of now)",
            file=sys.stderr,
        )
        return 2
    database.upgrade(settings.resolved_database_url)
    services = build_services(settings)
    report = jobs.tick(services)
    jobs.housekeeping(services)
    d = report.dispatched
    print(
        f"planned {report.planned.sequence_rows + report.planned.newsletter_rows}, sent {d.sent}, "
        f"failed {d.failed}, retried {d.retried}, deferred {d.deferred}, cancelled {d.cancelled}"
    )
    return 0


def stats(settings: Settings) -> int:
    from nurture.campaigns import load_catalogue
    from nurture.store import stats as queries

    engine = _engine(settings)
    catalogue = load_catalogue(settings)
    with database.reading(engine) as conn:
        statuses = queries.subscribers_by_status(conn)
        sent = queries.sent_per_step(conn)
        stopped = queries.stopped_after_step(conn)
        sends = queries.sends_by_state(conn)
    print("Subscribers")
    for status, count in sorted(statuses.items()):
        print(f"  {status:<14}{count:>8}")
    for slug, campaign in catalogue.campaigns.items():
        print(f"\nSequence {slug} (reached step / stopped after it)")
        for index, step in enumerate(campaign.steps):
            reached = sent.get((slug, step.slug), 0)
            left = stopped.get((slug, index + 1), 0)
            print(f"  {index + 1:>2}. {step.slug:<34}{reached:>8}{left:>8}")
    letters = {s: n for (c, s), n in sent.items() if c == "newsletters"}
    if letters:
        print("\nNewsletters sent")
        for slug, count in sorted(letters.items()):
            print(f"  {slug:<38}{count:>8}")
    print("\nSends by state")
    for state, count in sorted(sends.items()):
        print(f"  {state:<14}{count:>8}")
    return 0


def db_upgrade(settings: Settings) -> int:
    database.upgrade(settings.resolved_database_url)
    print("database is up to date")
    return 0


def subscribers(settings: Settings, args: argparse.Namespace) -> int:
    from nurture.subscriptions import export, gdpr

    engine = _engine(settings)
    match args.action:
        case "show":
            data = gdpr.show(engine, settings, args.address)
            if data is None:
                print("no such subscriber", file=sys.stderr)
                return 1
            print_json(data)
        case "erase":
            if not gdpr.erase(engine, settings, args.address, utcnow()):
                print("no such subscriber (a suppression was recorded anyway)", file=sys.stderr)
            else:
                print("erased; the address is kept only as a keyed hash on the suppression list")
        case "export":
            if args.out:
                with args.out.open("w", newline="", encoding="utf-8") as out:
                    export.export_csv(engine, out)
            else:
                export.export_csv(engine, sys.stdout)
        case "import":
            report = gdpr.import_csv(
                engine, settings, args.file, utcnow(), progress=sys.stderr.isatty()
            )
            print(report.summary())
            return 0 if not report.refused else 1
        case "unsubscribe-mail":
            from nurture.subscriptions.inbound import apply_unsubscribe_mail

            applied = apply_unsubscribe_mail(engine, settings, sys.stdin.buffer.read(), utcnow())
            # Exit 0 either way: a mail system piping into this command would otherwise
            # bounce a forged or stale request back to its sender.
            if applied:
                print("unsubscribed")
            else:
                print("no valid unsubscribe address in that message", file=sys.stderr)
    return 0
