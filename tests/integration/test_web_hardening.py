"""Hostile requests and local files (issue 8): forged Host headers, password guessing
on the preview, and who may read the development database."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import httpx
from sqlalchemy import Engine

from nurture.runtime.services import build_services
from nurture.settings import Settings, load_settings
from nurture.store import database
from nurture.testing import FakeProvider
from nurture.web.app import create_app
from nurture.web.ratelimit import FailureLock
from tests.helpers import production_settings, serve_app


def test_redirects_point_at_base_url_whatever_the_host_header(
    settings: Settings, engine: Engine
) -> None:
    services = build_services(settings, provider=FakeProvider(), engine=engine)
    with serve_app(create_app(services)) as url:
        for path in ("/healthz/", "/subscribe/what-i-actually-do/"):
            answer = httpx.get(url + path, headers={"Host": "attacker.example"})
            assert answer.status_code == 307
            assert answer.headers["location"] == settings.base_url + path.rstrip("/")


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_preview_basic_auth_locks_after_repeated_failures(tmp_path: Path, engine: Engine) -> None:
    settings = production_settings(
        tmp_path, preview_username="therapist", preview_password="s3cret pass"
    )
    services = build_services(settings, provider=FakeProvider(), engine=engine)
    app = create_app(services)
    app.state.login_failures = FailureLock(free=3, limit=5, max_delay=0.0)
    with serve_app(app) as url:
        for _ in range(5):
            wrong = httpx.get(f"{url}/preview", headers=_basic("therapist", "guess"))
            assert wrong.status_code == 401
        # Locked: even the right password is not compared now.
        locked = httpx.get(f"{url}/preview", headers=_basic("therapist", "s3cret pass"))
        assert locked.status_code == 429
        assert int(locked.headers["retry-after"]) > 0


def test_failures_slow_down_then_lock_and_age_out() -> None:
    now = [0.0]
    lock = FailureLock(free=2, limit=4, window=60, max_delay=1.0, clock=lambda: now[0])
    delays = [lock.failed("1.2.3.4") for _ in range(3)]
    assert delays == [0.0, 0.0, 0.5]  # the first tries cost nothing, then slower
    assert lock.locked("1.2.3.4") is None
    lock.failed("1.2.3.4")
    assert lock.locked("1.2.3.4") == 60
    assert lock.locked("5.6.7.8") is None  # one client's lock is its own
    now[0] = 61
    assert lock.locked("1.2.3.4") is None
    lock.failed("9.9.9.9")
    lock.succeeded("9.9.9.9")
    assert lock.failed("9.9.9.9") == 0.0  # a success starts the count again


def test_the_development_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    settings = load_settings(var_dir=tmp_path / "var", _env_file=None)
    database.upgrade(settings.resolved_database_url)
    path = tmp_path / "var" / "nurture.db"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
