"""The operator's commands in a subprocess (issue 12): production refusals, the port,
backups, and ``unsubscribe-mail`` as a mail system runs it."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from email import policy
from email.parser import BytesParser
from pathlib import Path

import httpx
import pytest

from nurture.clock import utcnow
from nurture.settings import load_settings
from nurture.store import database
from nurture.store.schema import subscribers
from nurture.subscriptions import SignUpRequest
from tests.helpers import ROOT, cli_env, free_port, make_service, rows, run_cli

#: Settings that pass every production refusal (through the environment, as systemd gives them).
PRODUCTION = {
    "NURTURE_ENV": "production",
    "NURTURE_SECRET_KEYS": "a-production-key-that-is-long-enough-0123456789",
    "NURTURE_SUPPRESSION_KEY": "a-suppression-key-that-is-long-enough-0123456789",
    "NURTURE_BASE_URL": "https://practice.example.net",
    "NURTURE_FROM_EMAIL": "hello@practice.example.net",
    "NURTURE_POSTAL_ADDRESS": "Example Practice, 1 Test Street, Testville",
    "NURTURE_DELIVERY": "sendgrid",
    "NURTURE_SENDGRID_API_KEY": "SG.test",
}


def _broken_campaigns(tmp_path: Path) -> Path:
    campaigns = tmp_path / "campaigns"
    shutil.copytree(ROOT / "campaigns", campaigns)
    welcome = campaigns / "what-i-actually-do" / "01-welcome.md"
    welcome.write_text(welcome.read_text() + "\nSee you soon, {{ nickname }}\n")
    return welcome


def test_check_production_passes_with_production_settings(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "check", "--production", env=PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "passed" in result.stdout


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"NURTURE_DELIVERY": "folder"}, "NURTURE_DELIVERY=folder"),
        ({"NURTURE_DELIVERY": "console"}, "NURTURE_ALLOW_LOCAL_DELIVERY"),
        ({"NURTURE_SUPPRESSION_KEY": ""}, "NURTURE_SUPPRESSION_KEY"),
        ({"NURTURE_SECRET_KEYS": "short"}, "NURTURE_SECRET_KEYS"),
        ({"NURTURE_BASE_URL": "http://practice.example.net"}, "NURTURE_BASE_URL"),
        ({"NURTURE_CRISIS_LINE": " "}, "NURTURE_CRISIS_LINE"),
    ],
)
def test_each_production_refusal_names_its_setting(
    tmp_path: Path, change: dict[str, str], named: str
) -> None:
    env = {**PRODUCTION, **change}
    if change.get("NURTURE_SUPPRESSION_KEY") == "":
        del env["NURTURE_SUPPRESSION_KEY"]
    for args in (("check", "--production"), ("serve", "--port", str(free_port()))):
        result = run_cli(tmp_path, *args, env=env)
        assert result.returncode == 2, (args, result.stderr)
        assert named in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    local = run_cli(tmp_path, "check", "--production", env={**env, "NURTURE_ENV": "development"})
    assert local.returncode == 2 and named in local.stderr  # as if ENV=production


def test_local_delivery_is_allowed_when_asked_for(tmp_path: Path) -> None:
    env = {**PRODUCTION, "NURTURE_DELIVERY": "folder", "NURTURE_ALLOW_LOCAL_DELIVERY": "true"}
    assert run_cli(tmp_path, "check", "--production", env=env).returncode == 0


def test_campaigns_failing_check_refuse_production_start_up(tmp_path: Path) -> None:
    welcome = _broken_campaigns(tmp_path)
    env = {**PRODUCTION, "NURTURE_CAMPAIGNS_DIR": str(welcome.parent.parent)}
    for args in (("check", "--production"), ("serve", "--port", str(free_port()))):
        result = run_cli(tmp_path, *args, env=env)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert f"{welcome}:" in result.stderr and "nickname" in result.stderr
        assert "refused in production" in result.stderr
        assert "web listening" not in result.stderr
    # check --production refuses them from a development machine too.
    development = {"NURTURE_CAMPAIGNS_DIR": str(welcome.parent.parent)}
    assert run_cli(tmp_path, "check", "--production", env=development).returncode == 2


# make run PORT=... -----------------------------------------------------------------


def _serve(tmp_path: Path, port: int, extra: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "nurture", "serve", "--port", str(port), "--no-scheduler"],
        cwd=tmp_path,
        env=cli_env(tmp_path, extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_until_up(proc: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code in (200, 503):
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the service never answered")


def test_links_follow_the_port_of_make_run(tmp_path: Path) -> None:
    port = free_port()
    proc = _serve(tmp_path, port)
    try:
        _wait_until_up(proc, port)
        answer = httpx.post(
            f"http://127.0.0.1:{port}/subscribe",
            json={"email": "jane@example.com", "campaign": "what-i-actually-do", "consent": True},
            timeout=10,
        )
        assert answer.status_code == 202
        mail_dir = tmp_path / "var" / "mail"
        deadline = time.monotonic() + 30
        while not list(mail_dir.rglob("*.eml")) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    (eml,) = list(mail_dir.rglob("*.eml"))
    message = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
    body = message.get_body(("plain",))
    assert body is not None
    assert f"http://127.0.0.1:{port}/confirm/" in body.get_content()
    assert "127.0.0.1:8000" not in eml.read_text()


def test_a_port_in_use_says_how_to_pick_another(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(tmp_path, "serve", "--port", str(port), "--no-scheduler")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"port {port}" in lines[0] and "PORT=" in lines[0] and "--port" in lines[0]


# nurture db backup -----------------------------------------------------------------


def test_db_backup_of_sqlite_and_the_pg_dump_command(tmp_path: Path) -> None:
    copy = tmp_path / "backups" / "nurture-1.db"
    assert run_cli(tmp_path, "db", "backup", str(copy)).returncode == 1  # no database yet
    assert run_cli(tmp_path, "db", "upgrade").returncode == 0
    result = run_cli(tmp_path, "db", "backup", str(copy))
    assert result.returncode == 0, result.stderr
    assert copy.exists() and (copy.stat().st_mode & 0o077) == 0
    with sqlite3.connect(copy) as conn:
        (version,) = conn.execute("select version_num from alembic_version").fetchone()
    assert f"schema {version}" in result.stdout

    postgres = run_cli(
        tmp_path,
        "db",
        "backup",
        "/srv/backups/nurture.dump",
        env={"NURTURE_DATABASE_URL": "postgresql://nurture@db.internal/nurture"},
    )
    assert postgres.returncode == 0, postgres.stderr
    assert "pg_dump --format=custom -h db.internal -U nurture -d nurture" in postgres.stdout


def test_db_vacuum_brings_an_old_database_to_todays_page_size(tmp_path: Path) -> None:
    url = load_settings(_env_file=None, var_dir=tmp_path / "var").resolved_database_url
    path = Path(url.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path)) as conn:  # as before: 4 KiB pages
        conn.execute("PRAGMA page_size=4096")
        conn.execute("CREATE TABLE made_before (x)")
    assert run_cli(tmp_path, "db", "upgrade").returncode == 0
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "INSERT INTO subscribers (public_id, email, status, newsletters, created_at)"
            " VALUES ('p1', 'kept@example.org', 'confirmed', 1, '2026-11-01 00:00:00.000000')"
        )

    def state() -> tuple[int, str, list[tuple[str]]]:
        with contextlib.closing(sqlite3.connect(path)) as conn:  # an open one holds the WAL
            return (
                conn.execute("PRAGMA page_size").fetchone()[0],
                conn.execute("PRAGMA journal_mode").fetchone()[0],
                conn.execute("SELECT email FROM subscribers").fetchall(),
            )

    assert state() == (4096, "wal", [("kept@example.org",)])
    holder = sqlite3.connect(path)  # the service, still running
    try:
        holder.execute("SELECT count(*) FROM subscribers").fetchall()
        refused = run_cli(tmp_path, "db", "vacuum")
        assert refused.returncode == 1
        assert "stop the service" in refused.stderr + refused.stdout
        assert "Traceback" not in refused.stderr + refused.stdout
    finally:
        holder.close()
    assert state() == (4096, "wal", [("kept@example.org",)])
    not_sqlite = tmp_path / "not-a-database.db"
    not_sqlite.write_bytes(b"not a database, " * 64)
    broken = run_cli(
        tmp_path, "db", "vacuum", env={"NURTURE_DATABASE_URL": f"sqlite:///{not_sqlite}"}
    )
    assert broken.returncode == 1 and "could not be rewritten" in broken.stderr
    assert "Traceback" not in broken.stderr
    done = run_cli(tmp_path, "db", "vacuum")
    assert done.returncode == 0, done.stderr
    assert "4,096 bytes, now 16,384" in done.stdout
    assert state() == (database.SQLITE_PAGE_SIZE, "wal", [("kept@example.org",)])


# unsubscribe-mail as Postfix runs it -------------------------------------------------


def _message(to: str) -> bytes:
    return f"From: jane@example.com\r\nTo: {to}\r\nSubject: unsubscribe\r\n\r\nbye\r\n".encode()


def test_unsubscribe_mail_exits_0_on_bad_and_foreign_tokens(tmp_path: Path) -> None:
    for raw in (_message("unsubscribe+forged.token@practice.test"), _message("x@y.z"), b"garbage"):
        result = run_cli(tmp_path, "subscribers", "unsubscribe-mail", stdin=raw)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stdout + result.stderr


def test_unsubscribe_mail_exits_75_with_the_database_down(tmp_path: Path) -> None:
    closed = free_port()
    env = {"NURTURE_DATABASE_URL": f"postgresql://nurture@127.0.0.1:{closed}/nurture"}
    result = run_cli(
        tmp_path,
        "subscribers",
        "unsubscribe-mail",
        "--recipient",
        "unsubscribe+abc@practice.test",
        env=env,
        stdin=_message("unsubscribe+forged.token@practice.test"),
    )
    assert result.returncode == 75
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "temporary failure" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_unsubscribe_mail_exits_75_when_its_env_file_is_unreadable(tmp_path: Path) -> None:
    result = run_cli(
        tmp_path,
        "subscribers",
        "unsubscribe-mail",
        "--env-file",
        str(tmp_path / "missing.env"),
        stdin=_message("x@y.z"),
    )
    assert result.returncode == 75
    assert "missing.env" in result.stderr and "Traceback" not in result.stderr


def test_unsubscribe_mail_reads_the_env_file_and_the_envelope_recipient(tmp_path: Path) -> None:
    """As Postfix's pipe runs it: no NURTURE_* variables, another working directory."""
    db_path = tmp_path / "srv" / "nurture.db"
    env_file = tmp_path / "nurture.env"
    env_file.write_text(
        f"NURTURE_DATABASE_URL=sqlite:///{db_path}\n"
        f"NURTURE_VAR_DIR={tmp_path / 'srv'}\n"
        "NURTURE_SECRET_KEYS=the-service-key-0123456789-0123456789\n"
        f"NURTURE_CAMPAIGNS_DIR={ROOT / 'campaigns'}\n"
        f"NURTURE_TEMPLATES_DIR={ROOT / 'templates'}\n"
    )
    settings = load_settings(_env_file=env_file)
    database.upgrade(settings.resolved_database_url)
    engine = database.make_engine(settings.resolved_database_url)
    service = make_service(settings, engine)
    service.sign_up(
        SignUpRequest(email="jane@example.com", campaign="what-i-actually-do", consent=True),
        now=utcnow(),
    )
    (row,) = rows(engine, subscribers)
    service.confirm(service.tokens.make("confirm", row.public_id), now=utcnow())
    token = service.tokens.make("unsubscribe", row.public_id)
    elsewhere = tmp_path / "spool"
    elsewhere.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nurture",
            "subscribers",
            "unsubscribe-mail",
            "--env-file",
            str(env_file),
            "--recipient",
            f"unsubscribe+{token}@practice.test",
        ],
        cwd=elsewhere,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        input=_message("unsubscribe@practice.test"),  # the token only in the envelope
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert rows(engine, subscribers)[0].status == "unsubscribed"
    assert not (elsewhere / "var").exists()
    engine.dispose()
