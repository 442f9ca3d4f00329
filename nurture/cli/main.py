"""The ``nurture`` command: a thin layer that parses arguments and calls the core.

Exit statuses: 0 success, 1 a problem the user can fix (campaign errors, unknown
address), 2 wrong usage or configuration.
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
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the web app and the scheduler")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-scheduler", action="store_true", help="web half only")
    serve.add_argument("--no-web", action="store_true", help="scheduler half only")

    sub.add_parser("check", help="validate every campaign and template")

    preview = sub.add_parser("preview", help="render steps to .mjml/.html/.txt/.eml")
    preview.add_argument("campaign")
    preview.add_argument("step", nargs="?")
    preview.add_argument("--out", type=Path, default=None, help="default VAR_DIR/preview")

    test = sub.add_parser("send-test", help="send one step now, subject prefixed [TEST]")
    test.add_argument("campaign")
    test.add_argument("step")
    test.add_argument("--to", required=True, dest="to")

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
    subs_cmd.add_parser(
        "unsubscribe-mail", help="apply an unsubscribe+TOKEN@ message read from stdin"
    )

    sub.add_parser("stats", help="subscribers, funnels, unsubscribes, sends")

    db = sub.add_parser("db", help="database maintenance")
    db_cmd = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    db_cmd.add_parser("upgrade", help="apply migrations")
    return parser


def _instant(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 instant: {value!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Caught from here on: a stop during start-up exits 0 too (see runtime.signals).
    signals = StopSignals().install() if args.command == "serve" else None
    from nurture.settings import load_settings  # imported after: it takes a while

    try:
        settings = load_settings()
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
            return commands.check(settings)
        case "preview":
            return commands.preview(settings, args.campaign, args.step, args.out)
        case "send-test":
            return commands.send_test(settings, args.campaign, args.step, args.to)
        case "tick":
            return commands.tick(settings, at=args.at, dry_run=args.dry_run)
        case "stats":
            return commands.stats(settings)
        case "db":
            return commands.db_upgrade(settings)
        case "subscribers":
            return commands.subscribers(settings, args)
    raise AssertionError(args.command)


if __name__ == "__main__":
    raise SystemExit(main())
