"""axe-core (WCAG 2.1 A/AA) on the dashboard and the archive: no serious or critical
violation. axe-core comes from npm (``tests/browser/node``, the studio's setup)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import Response

from nurture.runtime import jobs
from nurture.settings import Settings
from nurture.testing import FakeClock, FakeProvider
from nurture.web.app import create_app
from nurture.web.studio import auth
from tests.browser.audit import AXE, axe_violations
from tests.helpers import serve_app, services_for, subscribe_and_confirm


def serious(page: Any) -> list[str]:
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])})" for v in axe_violations(page)]


def test_dashboard_and_archive_pass_axe(
    settings: Settings, sqlite_engine: Engine, browser: Any
) -> None:
    if not AXE.exists():
        pytest.skip(f"{AXE} is missing (npm ci in tests/browser/node)")
    clock = FakeClock(datetime(2026, 12, 7, 10, 0, tzinfo=UTC))
    services = services_for(settings, sqlite_engine, clock, FakeProvider())
    subscribe_and_confirm(services, clock, "reader@example.org", "what-i-actually-do")
    for _ in range(30):
        clock.advance(hours=1)
        jobs.tick(services)
    response = Response()
    app_stub = SimpleNamespace(state=SimpleNamespace(services=services))
    auth.start_session(response, Request({"type": "http", "app": app_stub, "headers": []}))
    name, value = response.headers["set-cookie"].split(";", 1)[0].split("=", 1)
    with serve_app(create_app(services)) as base:
        for width in (1280, 390):
            context = browser.new_context(viewport={"width": width, "height": 900}, bypass_csp=True)
            context.add_cookies([{"name": name, "value": value, "url": base + "/studio/"}])
            page = context.new_page()
            for path in ("/studio/", "/archive", "/archive/2026-12-08-winter-note"):
                assert page.goto(base + path).status == 200, path
                assert serious(page) == [], (path, width)
            context.close()
