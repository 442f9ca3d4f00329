"""The operator's settings and logs (issue 12): port, mailto domain, quieter and safer logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from nurture import logs
from nurture.mail.recipients import RecipientFactory, parse_unsubscribe_mailto
from nurture.mail.tokens import Tokens
from nurture.settings import Settings, load_settings
from nurture.store import backup
from nurture.web.access import AccessLogMiddleware, mask_ip, safe_path
from tests.helpers import production_settings


def _development(tmp_path: Path, **values: object) -> Settings:
    return load_settings(var_dir=tmp_path / "var", _env_file=None, **values)


def test_base_url_follows_the_port_in_development(tmp_path: Path) -> None:
    settings = _development(tmp_path)
    assert settings.following_port("127.0.0.1", 8123).base_url == "http://127.0.0.1:8123"
    assert settings.following_port("0.0.0.0", 8124).base_url == "http://127.0.0.1:8124"
    assert settings.following_port("::1", 8125).base_url == "http://[::1]:8125"


def test_a_configured_base_url_never_follows_the_port(tmp_path: Path) -> None:
    explicit = _development(tmp_path, base_url="http://mail.example.test:8000")
    assert explicit.following_port("127.0.0.1", 8123).base_url == "http://mail.example.test:8000"
    production = production_settings(tmp_path)
    assert production.following_port("127.0.0.1", 8123).base_url == production.base_url


def test_the_mailto_domain_defaults_to_from_emails(settings: Settings) -> None:
    assert settings.unsubscribe_domain == "practice.test"
    headers = _list_unsubscribe(settings)
    assert "@practice.test>" in headers


def test_unsubscribe_mail_domain_sets_the_mailto_domain(settings: Settings) -> None:
    moved = load_settings(
        **{**settings.model_dump(), "unsubscribe_mail_domain": "Lists.Practice.TEST"},
        _env_file=None,
    )
    assert moved.unsubscribe_domain == "lists.practice.test"
    headers = _list_unsubscribe(moved)
    mailto = headers.split(", ")[1].strip("<>")
    assert mailto.endswith("@lists.practice.test")
    assert parse_unsubscribe_mailto(mailto)


def test_a_malformed_mailto_domain_is_refused(tmp_path: Path) -> None:
    from nurture.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="NURTURE_UNSUBSCRIBE_MAIL_DOMAIN"):
        _development(tmp_path, unsubscribe_mail_domain="not a domain")


def _list_unsubscribe(settings: Settings) -> str:
    factory = RecipientFactory(settings, Tokens.from_settings(settings))
    recipient = factory.marketing(
        email="jane@example.com", public_id="p1", first_name=None, fallback="there", outbox_id=1
    )
    return recipient.headers["List-Unsubscribe"]


def test_retention_defaults(tmp_path: Path) -> None:
    settings = _development(tmp_path)
    assert settings.retention_unsubscribed_days == 30
    assert settings.access_log is False


# Logs ------------------------------------------------------------------------------


@pytest.fixture
def stderr() -> Iterator[io.StringIO]:
    """Where :func:`configure` (the CLI's logging set-up) writes, restored afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield io.StringIO()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def configure(buffer: io.StringIO, level: str, fmt: str, **options: bool) -> None:
    logs.configure(level, fmt, **options)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)


def test_apscheduler_run_lines_drop_to_debug(stderr: io.StringIO) -> None:
    configure(stderr, "INFO", "text")
    executor = logging.getLogger("apscheduler.executors.default")
    executor.info('Running job "dispatch" (scheduled at 2026-12-01)')
    logging.getLogger("apscheduler.scheduler").info("Added job")
    executor.error("Job raised an exception")
    assert "Running job" not in stderr.getvalue()
    assert "Added job" not in stderr.getvalue()
    assert "Job raised an exception" in stderr.getvalue()

    configure(stderr, "DEBUG", "text")
    executor.info('Running job "plan"')
    assert 'DEBUG apscheduler.executors.default: Running job "plan"' in stderr.getvalue()


def test_json_logs_carry_no_ansi_and_no_color_message(stderr: io.StringIO) -> None:
    configure(stderr, "INFO", "json")
    # As uvicorn logs (its own logger's level depends on earlier tests' servers).
    logging.getLogger("nurture.test.uvicorn").info(
        "Started server process [%d]",
        42,
        extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"},
    )
    logging.getLogger("nurture.test").info("\x1b[32mgreen\x1b[0m words")
    lines = [json.loads(line) for line in stderr.getvalue().splitlines()]
    assert "color_message" not in lines[0]
    assert lines[0]["message"] == "Started server process [42]"
    assert lines[1]["message"] == "green words"
    assert "\x1b" not in stderr.getvalue()


def test_without_tracebacks_an_exception_is_one_line(stderr: io.StringIO) -> None:
    configure(stderr, "INFO", "text", tracebacks=False)
    try:
        raise RuntimeError("database is down")
    except RuntimeError:
        logging.getLogger("nurture.test").exception("failed")
    assert stderr.getvalue().count("\n") == 1
    assert "Traceback" not in stderr.getvalue()


def test_access_log_paths_lose_their_tokens() -> None:
    assert safe_path("/confirm/eyJhbGciOi.abc-def") == "/confirm/…"
    assert safe_path("/unsubscribe/tok.en/extra") == "/unsubscribe/…/extra"
    assert safe_path("/preferences/tok") == "/preferences/…"
    assert safe_path("/subscribe/what-i-actually-do") == "/subscribe/what-i-actually-do"
    assert mask_ip("203.0.113.77") == "203.0.113.x"
    assert mask_ip("::ffff:198.51.100.9") == "198.51.100.x"
    assert mask_ip("2001:db8:1:2:3:4:5:6") == "2001:db8:1::/48"
    assert mask_ip("testclient") == "unknown"


def test_the_access_log_writes_one_safe_line(caplog: pytest.LogCaptureFixture) -> None:
    async def page(request: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/confirm/{token}", page)])
    transport = httpx.ASGITransport(
        app=AccessLogMiddleware(app, trusted=[]), client=("203.0.113.77", 5000)
    )

    async def visit() -> None:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.get("/confirm/secret-token.sig?email=jane@example.com")

    # Its own thread: a browser test's Playwright may keep an event loop in this one.
    with caplog.at_level(logging.INFO, logger="nurture.access"), ThreadPoolExecutor(1) as pool:
        pool.submit(anyio.run, visit).result()
    (record,) = [r for r in caplog.records if r.name == "nurture.access"]
    assert record.getMessage() == "GET /confirm/… 200"
    assert (record.path, record.status, record.client) == ("/confirm/…", 200, "203.0.113.x")  # type: ignore[attr-defined]
    assert "secret-token" not in repr(vars(record)) and "jane" not in repr(vars(record))


def test_pg_dump_command_names_the_database_but_never_the_password(tmp_path: Path) -> None:
    url = "postgresql://nurture:s3cret@db.internal:5433/nurture"
    dump = backup.pg_dump_command(url, tmp_path / "nurture.dump")
    assert dump.startswith("pg_dump --format=custom -h db.internal -p 5433 -U nurture -d nurture")
    assert "s3cret" not in dump
    assert backup.pg_restore_command(url, tmp_path / "x.dump").startswith("pg_restore --clean")
    assert not backup.is_sqlite_url(url) and backup.is_sqlite_url("sqlite:///var/nurture.db")
