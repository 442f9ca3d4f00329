"""What each ``nurture`` command does, on top of the core (the CLI only parses)."""

from __future__ import annotations

import argparse
import json
import secrets
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

    if settings.env == "production" and _campaigns_refused(settings):
        return 2
    settings = settings.following_port(host, port)  # make run PORT=8123: links follow
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


def _campaigns_refused(settings: Settings) -> bool:
    """Prints every campaign error (``path:line: message``); ``True`` when there is one.

    Production refuses to start on them: a broken step would otherwise fail mid-send.
    """
    from nurture.campaigns.check import check as run_check

    errors = [p for p in run_check(settings) if p.is_error]
    for problem in errors:
        print(problem, file=sys.stderr)
    if errors:
        print(
            f"nurture: refused in production: {len(errors)} campaign error(s) in "
            f"{settings.campaigns_dir} (NURTURE_CAMPAIGNS_DIR); `nurture check` lists them",
            file=sys.stderr,
        )
    return bool(errors)


def check_production(settings: Settings, **sources: object) -> int:
    """``nurture check --production``: every start-up refusal, without starting anything.

    The settings are read again as if ``ENV=production`` (same sources); then the
    campaigns are checked. Exit 2 when production would refuse to start, else 0.
    """
    from nurture.exceptions import ConfigurationError
    from nurture.settings import load_settings

    refused = False
    try:
        settings = load_settings(**sources, env="production")
    except ConfigurationError as exc:
        print(f"nurture: {exc}", file=sys.stderr)
        refused = True
    refused = _campaigns_refused(settings) or refused
    if refused:
        return 2
    print("production start-up checks passed (settings and campaigns)")
    return 0


def new_campaign(
    settings: Settings, article: Path, *, slug: str, url: str, title: str | None
) -> int:
    """``nurture new-campaign``: drafts ``campaigns/SLUG/`` from the article, then
    prints what was written and the sign-up snippet for the article's page."""
    from nurture.campaigns.article import Format
    from nurture.campaigns.scaffold import scaffold, write_scaffold
    from nurture.exceptions import CampaignError
    from nurture.web.signup import signup_snippet

    try:
        text = article.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"nurture: cannot read {article}: {exc}", file=sys.stderr)
        return 1
    fmt: Format = "markdown" if article.suffix.lower() in (".md", ".markdown") else "text"
    try:
        drafted = scaffold(text, slug=slug, url=url, title=title, settings=settings, fmt=fmt)
        folder = write_scaffold(drafted, Path(settings.campaigns_dir))
    except CampaignError as exc:
        print(f"nurture: {exc}", file=sys.stderr)
        return 1
    print(f"drafted {folder}/ from {article}: {len(drafted.steps)} steps, each a draft")
    for step in drafted.steps:
        print(f"  {step.slug}.md  {step.subject}  ({len(step.notes)} key points quoted)")
    print("\nWrite each step in your own words, delete its '> NOTE:' lines and 'draft: true',")
    print("then run `nurture check`. Once the steps are published, paste this sign-up form")
    print("at the end of the article:\n")
    print(signup_snippet(settings, drafted.slug, drafted.name))
    return 0


def preview(settings: Settings, campaign: str, step: str | None, out: Path | None) -> int:
    from nurture.campaigns import load_catalogue
    from nurture.rendering.preview import write_preview

    catalogue = load_catalogue(settings)
    paths = write_preview(settings, catalogue, campaign, step, out or settings.var_dir / "preview")
    for path in paths:
        print(path)
    return 0


def send_test(settings: Settings, campaign: str, step: str, to: str | None) -> int:
    from nurture.campaigns import load_catalogue
    from nurture.delivery.trial import send_trial
    from nurture.providers import make_provider

    to = to or settings.test_recipient
    if not to:
        print("nurture: give --to ADDRESS (or set NURTURE_TEST_RECIPIENT)", file=sys.stderr)
        return 2
    catalogue = load_catalogue(settings)
    # The test reader's links work (their pages change nothing): see delivery.trial.
    results = send_trial(settings, catalogue, make_provider(settings), campaign, step, to)
    for result in results:
        # The address is the one she typed: naming it in full is what she needs to see.
        detail = result.message_id or result.error or ""
        print(f"test email to {to}: {result.outcome} {detail}".rstrip())
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


def stats(settings: Settings, *, as_json: bool = False) -> int:
    """The figures of the studio's dashboard, as labelled tables or (``--json``) JSON."""
    from nurture.campaigns import load_catalogue
    from nurture.cli import stats_table
    from nurture.store import stats as queries

    data = queries.read(_engine(settings), load_catalogue(settings), now=utcnow())
    if as_json:
        print_json(data)
    else:
        print(stats_table.render(data))
    return 0


def db_upgrade(settings: Settings) -> int:
    database.upgrade(settings.resolved_database_url)
    print("database is up to date")
    return 0


def db_backup(settings: Settings, path: Path) -> int:
    """``nurture db backup PATH``: an online copy of SQLite; for PostgreSQL, the command."""
    from nurture.store import backup

    url = settings.resolved_database_url
    if not backup.is_sqlite_url(url):
        print("PostgreSQL is backed up with its own tool, while the service runs:")
        print(f"  {backup.pg_dump_command(url, path)}")
        print(f"restore into an empty database: {backup.pg_restore_command(url, path)}")
        return 0
    revision = backup.backup_sqlite(url, path)
    print(f"backed up to {path} (schema {revision}); restore: stop the service, copy it back")
    return 0


def db_vacuum(settings: Settings) -> int:
    """``nurture db vacuum``: an old SQLite database rewritten with today's page size."""
    from nurture.store import backup, vacuum

    url = settings.resolved_database_url
    if not backup.is_sqlite_url(url):
        print("nothing to do: PostgreSQL looks after its own storage (autovacuum)")
        return 0
    before, after = vacuum.vacuum_sqlite(url)
    print(f"database rewritten: pages of {before:,} bytes, now {after:,}")
    return 0


def unsubscribe_mail(settings: Settings, recipients: list[str]) -> int:
    """``subscribers unsubscribe-mail``: the message on stdin; 0 whether or not it applied.

    A mail system piping into this command would otherwise bounce a forged or stale
    request back to its sender. Failures raise (the caller exits 75).
    """
    from nurture.subscriptions.inbound import apply_unsubscribe_mail

    engine = database.make_engine(settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            database.ping(conn)  # unreachable: the caller exits 75, whatever the message
        raw = sys.stdin.buffer.read()
        applied = apply_unsubscribe_mail(engine, settings, raw, utcnow(), recipients=recipients)
    finally:
        engine.dispose()
    if applied:
        print("unsubscribed")
    else:
        print("no valid unsubscribe address in that message", file=sys.stderr)
    return 0


def new_api_key() -> int:
    """Prints a fresh key for a booking tool and the entry that goes into API_KEYS."""
    from nurture.web.api import hash_key

    key = secrets.token_urlsafe(32)
    print(f"key (give it to the booking tool, once): {key}")
    print(f"API_KEYS entry (only this is stored):   {hash_key(key)}")
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
        case "booked":
            from nurture.campaigns import load_catalogue
            from nurture.subscriptions import goals

            stopped = goals.reached(
                engine, load_catalogue(settings), args.address, goals.BOOKED, now=utcnow()
            )
            print(f"{mask_email(args.address)}: {stopped} sequence(s) stopped")
        case "import":
            report = gdpr.import_csv(
                engine, settings, args.file, utcnow(), progress=sys.stderr.isatty()
            )
            print(report.summary())
            return 0 if not report.refused else 1
    return 0


def studio_password() -> int:
    """Reads a password (twice on a terminal, once from a pipe); prints its argon2id hash."""
    import getpass

    from nurture.web.studio.auth import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Studio password: ")
        if getpass.getpass("Again: ") != password:
            print("nurture: the two passwords differ; nothing printed", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 10:
        print("nurture: use at least 10 characters", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0
