"""The ``nurture`` command: a thin layer that parses arguments and calls the core.

Exit statuses: 0 success, 1 a problem the user can fix (campaign errors, unknown
address), 2 wrong usage or configuration; ``subscribers unsubscribe-mail`` exits 75
(EX_TEMPFAIL: the mail system tries again later) on any failure that is not the
message's fault.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from nurture import logs
from nurture.exceptions import CampaignError, ConfigurationError, NurtureError
from nurture.runtime.signals import StopSignals

if TYPE_CHECKING:
    from nurture.settings import Settings

log = logging.getLogger("nurture.cli.main")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nurture", description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", type=Path, default=None, help=_ENV_FILE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the web app and the scheduler")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-scheduler", action="store_true", help="web half only")
    serve.add_argument("--no-web", action="store_true", help="scheduler half only")

    check = sub.add_parser("check", help="validate every campaign and template")
    check.add_argument(
        "--production",
        action="store_true",
        help="also run every production start-up refusal (settings as if ENV=production)",
    )

    new = sub.add_parser("new-campaign", help="draft a campaign from an article's text")
    new.add_argument("--from", dest="article", type=Path, required=True, metavar="ARTICLE")
    new.add_argument("--slug", required=True, help="the folder's name, used in links")
    new.add_argument("--url", required=True, help="the article's https:// address")
    new.add_argument("--title", default=None, help="default: the article's first heading")

    preview = sub.add_parser("preview", help="render steps to .mjml/.html/.txt/.eml")
    preview.add_argument("campaign")
    preview.add_argument("step", nargs="?")
    preview.add_argument("--out", type=Path, default=None, help="default VAR_DIR/preview")

    test = sub.add_parser("send-test", help="send one step now, subject prefixed [TEST]")
    test.add_argument("campaign")
    test.add_argument("step")
    test.add_argument("--to", dest="to", help="default: TEST_RECIPIENT")

    tick = sub.add_parser("tick", help="one planning + dispatch pass")
    tick.add_argument("--at", type=_instant, default=None, help="ISO-8601 instant (default now)")
    tick.add_argument("--dry-run", action="store_true", help="print what would go out")

    subs = sub.add_parser("subscribers", help="import, export, show, erase")
    subs_cmd = subs.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = subs_cmd.add_parser("import", help="import a CSV with consent evidence")
    imp.add_argument("file", type=Path)
    exp = subs_cmd.add_parser("export", help="write every subscriber as CSV")
    exp.add_argument("--out", type=Path, default=None, help="default stdout")
    show = subs_cmd.add_parser("show", help="everything held about an address, as JSON")
    show.add_argument("address")
    erase = subs_cmd.add_parser("erase", help="delete an address's personal data (GDPR)")
    erase.add_argument("address")
    booked = subs_cmd.add_parser(
        "booked", help="the reader booked: stop the sequences with stop_when: [booked]"
    )
    booked.add_argument("address")
    inbound = subs_cmd.add_parser(
        "unsubscribe-mail", help="apply an unsubscribe+TOKEN@ message read from stdin"
    )
    # SUPPRESS: given only before the command, the top-level value must survive.
    inbound.add_argument("--env-file", type=Path, default=argparse.SUPPRESS, help=_ENV_FILE_HELP)
    inbound.add_argument(
        "--recipient",
        action="append",
        default=[],
        help="the envelope recipient, as the mail system gives it (Postfix: ${recipient})",
    )

    api_key = sub.add_parser("api-key", help="keys for /api/... (API_KEYS)")
    api_key_cmd = api_key.add_subparsers(dest="action", required=True, metavar="ACTION")
    api_key_cmd.add_parser("new", help="print a new key and its API_KEYS entry")

    stats = sub.add_parser("stats", help="subscribers, funnels, link clicks, newsletters, queue")
    stats.add_argument("--json", action="store_true", help="the figures as JSON")

    studio = sub.add_parser("studio", help="the therapist's studio")
    studio_cmd = studio.add_subparsers(dest="action", required=True, metavar="ACTION")
    studio_cmd.add_parser("password", help="print an argon2id hash for STUDIO_PASSWORD_HASH")

    db = sub.add_parser("db", help="database maintenance")
    db_cmd = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    db_cmd.add_parser("upgrade", help="apply migrations")
    backup = db_cmd.add_parser("backup", help="a consistent copy of the live SQLite database")
    backup.add_argument("path", type=Path)
    db_cmd.add_parser(
        "vacuum", help="rewrite an old SQLite database compactly (with the service stopped)"
    )
    return parser


_ENV_FILE_HELP = "read settings from this file, as the service does (e.g. /etc/nurture/nurture.env)"


def _instant(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 instant: {value!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "subscribers" and args.action == "unsubscribe-mail":
        return _inbound_mail(args)
    # Caught from here on: a stop during start-up exits 0 too (see runtime.signals).
    signals = StopSignals().install() if args.command == "serve" else None
    from nurture.settings import load_settings  # imported after: it takes a while

    try:
        settings = load_settings(**_env_file(args.env_file))
    except ConfigurationError as exc:
        print(f"nurture: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    try:
        return _run(args, settings, signals)
    except ConfigurationError as exc:
        print(f"nurture: {exc}", file=sys.stderr)
        return 2
    except CampaignError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except NurtureError as exc:
        print(f"nurture: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, settings: Settings, signals: StopSignals | None) -> int:
    from nurture.cli import commands

    match args.command:
        case "serve":
            return commands.serve(
                settings,
                host=args.host,
                port=args.port,
                web=not args.no_web,
                scheduler=not args.no_scheduler,
                signals=signals,
            )
        case "check":
            if args.production:
                return commands.check_production(settings, **_env_file(args.env_file))
            return commands.check(settings)
        case "new-campaign":
            return commands.new_campaign(
                settings, args.article, slug=args.slug, url=args.url, title=args.title
            )
        case "preview":
            return commands.preview(settings, args.campaign, args.step, args.out)
        case "send-test":
            return commands.send_test(settings, args.campaign, args.step, args.to)
        case "tick":
            return commands.tick(settings, at=args.at, dry_run=args.dry_run)
        case "stats":
            return commands.stats(settings, as_json=args.json)
        case "db":
            if args.action == "backup":
                return commands.db_backup(settings, args.path)
            if args.action == "vacuum":
                return commands.db_vacuum(settings)
            return commands.db_upgrade(settings)
        case "subscribers":
            return commands.subscribers(settings, args)
        case "api-key":
            return commands.new_api_key()
        case "studio":
            return commands.studio_password()
    raise AssertionError(args.command)


def _env_file(path: Path | None) -> dict[str, object]:
    """``load_settings`` arguments reading ``path`` instead of ``.env``; raises
    :class:`ConfigurationError` when it cannot be read (pydantic would skip it silently)."""
    if path is None:
        return {}
    try:
        path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"--env-file {path}: cannot read it ({exc.strerror or exc})"
        ) from None
    return {"_env_file": path}


def _inbound_mail(args: argparse.Namespace) -> int:
    """``subscribers unsubscribe-mail``, run by a mail system: never a traceback.

    0 when the message was handled (applied, or no valid token: a forged or stale
    request must not bounce back to its sender); 75 (EX_TEMPFAIL) with one line on
    stderr for anything else (settings, the database), so the mail system retries.
    """
    from nurture.cli import commands

    try:
        from nurture.settings import load_settings

        settings = load_settings(**_env_file(args.env_file))
        logs.configure(settings.log_level, settings.log_format, tracebacks=False)
        return commands.unsubscribe_mail(settings, args.recipient)
    except Exception as exc:  # whatever it is, the mail system must retry, not bounce
        # A database error's own text, without SQLAlchemy's statement and links.
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
        reason = reason or type(exc).__name__
        print(f"nurture: temporary failure, try again later: {reason}", file=sys.stderr)
        return EX_TEMPFAIL


#: sysexits.h: a temporary failure; Postfix keeps the message and tries again.
EX_TEMPFAIL = 75


if __name__ == "__main__":
    raise SystemExit(main())
