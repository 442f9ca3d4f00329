"""A stop during start-up: ``nurture serve`` exits 0, whenever SIGTERM arrives.

systemd may stop a unit while it is still starting. The signal is sent as soon as
the service begins creating its SQLite database (migrations running, the server's own
handlers not installed yet): Python's default handler would end it with status 143.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers import cli_env, free_port


def test_sigterm_during_start_up_exits_cleanly(tmp_path: Path) -> None:
    database = tmp_path / "var" / "nurture.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nurture", "serve", "--port", str(free_port())],
        cwd=tmp_path,
        env=cli_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not database.exists():  # the start-up has reached the migrations
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the database was never created"
            time.sleep(0.002)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate(timeout=10)
    assert "Traceback" not in err
    assert "web listening" not in out + err  # it stopped before serving anything


def test_a_scheduler_only_process_serves_its_metrics(tmp_path: Path) -> None:
    port = free_port()
    env = cli_env(tmp_path, {"NURTURE_METRICS_PORT": str(port)})
    assert (
        subprocess.run(
            [sys.executable, "-m", "nurture", "db", "upgrade"], cwd=tmp_path, env=env, check=False
        ).returncode
        == 0
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "nurture", "serve", "--no-web"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        body = ""
        deadline = time.monotonic() + 60
        while "nurture_" not in body:  # another process: nothing to wait on but its port
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no metrics were served"
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.TransportError:
                time.sleep(0.1)
        assert "nurture_outbox" in body or "nurture_sends" in body
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
