"""The ``nurture`` command in a subprocess, as the therapist and the operator run it."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import ROOT, cli_env, run_cli


def test_check_passes_on_the_shipped_campaigns(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 error(s)" in result.stderr


def test_check_reports_each_problem_with_file_and_line(tmp_path: Path) -> None:
    campaigns = tmp_path / "campaigns"
    shutil.copytree(ROOT / "campaigns", campaigns)
    welcome = campaigns / "what-i-actually-do" / "01-welcome.md"
    text = welcome.read_text()
    # An explicit subject that exposes the topic, and an unknown variable in the body.
    lines = text.splitlines()
    subject_line = next(i for i, line in enumerate(lines) if line.startswith("subject:"))
    lines[subject_line] = (
        "subject: Your sex therapy questions answered, every single one of them, in one long email"
    )
    lines.append("See you soon, {{ nickname }}")
    welcome.write_text("\n".join(lines) + "\n")
    # Broken front matter in another file.
    second = campaigns / "beginning-therapy" / "02-the-whole-picture.md"
    second.write_text(second.read_text().replace("delay:", "delay: [unclosed", 1))

    result = run_cli(tmp_path, "check", env={"NURTURE_CAMPAIGNS_DIR": str(campaigns)})

    assert result.returncode == 1
    out = result.stdout.splitlines()
    expected_subject = f"{welcome}:{subject_line + 1}:"
    assert any(line.startswith(expected_subject) and "sex" in line for line in out), out
    assert any(line.startswith(expected_subject) and "70" in line for line in out), out
    body_line = len(lines)
    assert any(line.startswith(f"{welcome}:{body_line}:") and "nickname" in line for line in out), (
        out
    )
    assert any(line.startswith(f"{second}:") and "YAML" in line for line in out), out


def test_preview_writes_every_format(tmp_path: Path) -> None:
    out = tmp_path / "preview"
    result = run_cli(
        tmp_path, "preview", "beginning-therapy", "01-the-first-step", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    written = {p.suffix for p in out.rglob("*") if p.is_file()}
    assert written == {".mjml", ".html", ".txt", ".eml"}


def test_preview_of_an_unknown_campaign_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "preview", "no-such-campaign")
    assert result.returncode == 1
    assert "no-such-campaign" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_setting_is_named_at_start_up(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "check", env={"NURTURE_SEND_WINDOW": "9 to 5"})
    assert result.returncode == 2
    assert "NURTURE_SEND_WINDOW" in result.stderr


def test_production_requires_its_settings(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "check", env={"NURTURE_ENV": "production"})
    assert result.returncode == 2
    for name in ("SECRET_KEYS", "BASE_URL", "FROM_EMAIL", "POSTAL_ADDRESS"):
        assert f"NURTURE_{name}" in result.stderr


def test_tick_dry_run_changes_nothing_and_tick_runs(tmp_path: Path) -> None:
    assert run_cli(tmp_path, "db", "upgrade").returncode == 0
    dry = run_cli(tmp_path, "tick", "--at", "2026-12-08T10:00:00Z", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would go out" in dry.stdout
    # Sending "as of" the future would send tomorrow's mail today: refused.
    future = run_cli(tmp_path, "tick", "--at", "2099-12-08T10:00:00Z")
    assert future.returncode == 2
    assert "--dry-run" in future.stderr
    # "As of" the past would stamp leases and updated_at in the past, so housekeeping
    # would requeue mail that just left (issue 8): refused as well.
    past = run_cli(tmp_path, "tick", "--at", "2026-11-01T10:00:00Z")
    assert past.returncode == 2
    assert "--dry-run" in past.stderr
    real = run_cli(tmp_path, "tick")
    assert real.returncode == 0, real.stderr
    assert "sent 0" in real.stdout
    stats = run_cli(tmp_path, "stats")
    assert stats.returncode == 0
    assert "Sequence what-i-actually-do" in stats.stdout


def test_unknown_address_is_a_clear_answer(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "subscribers", "show", "nobody@example.org")
    assert result.returncode == 1
    assert "no such subscriber" in result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.timeout(120)
def test_serve_answers_healthz_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nurture", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=cli_env(tmp_path, {"NURTURE_TICK_SECONDS": "1"}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                status = response.status_code
                if status == 200 and response.json().get("last_tick"):
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert status == 200
        assert response.json()["last_tick"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate(timeout=10)
    assert "Traceback" not in err


def test_send_test_goes_through_the_backend_with_a_test_subject(tmp_path: Path) -> None:
    result = run_cli(
        tmp_path, "send-test", "beginning-therapy", "01-the-first-step", "--to", "me@example.org"
    )
    assert result.returncode == 0, result.stderr
    # The therapist's own address, typed a moment ago: named, so she knows where to look.
    assert "test email to me@example.org: sent" in result.stdout
    files = list((tmp_path / "var" / "mail").glob("*.eml"))
    assert len(files) == 1
    message = files[0].read_text()
    assert "Subject: [TEST] " in message
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in message


def test_import_refuses_rows_without_consent_and_lists_them(tmp_path: Path) -> None:
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(
        "email,first_name,timezone,consent_source,consent_date,campaign,newsletters\n"
        "ok@example.org,Ann,Europe/London,paper form at the practice,2026-10-01,,yes\n"
        "nope@example.org,Bob,,,,,yes\n"
    )
    result = run_cli(tmp_path, "subscribers", "import", str(csv_file))
    assert result.returncode == 1
    assert ":3" in result.stdout + result.stderr  # the refused row, by line
    shown = run_cli(tmp_path, "subscribers", "show", "ok@example.org")
    assert shown.returncode == 0
    assert '"confirmed"' in shown.stdout
    assert run_cli(tmp_path, "subscribers", "show", "nope@example.org").returncode == 1
    exported = run_cli(tmp_path, "subscribers", "export")
    assert "ok@example.org" in exported.stdout and "nope@example.org" not in exported.stdout
    assert run_cli(tmp_path, "subscribers", "erase", "ok@example.org").returncode == 0
    after = run_cli(tmp_path, "subscribers", "show", "ok@example.org").stdout
    assert '"erased"' in after  # all that is left: the keyed hash on the suppression list
    assert "Ann" not in after and "Europe/London" not in after
