"""Pieces that several integration test modules share (kept out of the test modules,
so that no test module imports another): a served studio, a page's form tokens, a
studio session cookie, a reader part-way through a sequence, a fake SendGrid."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import Response

from nurture.delivery import planning
from nurture.runtime.services import Services, build_services
from nurture.settings import Settings
from nurture.testing import FakeClock, FakeProvider
from nurture.testing.sendgrid import FakeSendGrid
from nurture.web.app import create_app
from nurture.web.ratelimit import FailureLock
from nurture.web.studio import auth
from tests.helpers import serve_app, services_for, subscribe_and_confirm

# -- the studio, served -------------------------------------------------------------------

STUDIO_NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def serve(settings: Settings, engine: Engine) -> Iterator[tuple[Services, httpx.Client]]:
    """The app on loopback with a fake provider and a fixed clock, and a client for it."""
    services = build_services(
        settings, engine=engine, clock=lambda: STUDIO_NOW, provider=FakeProvider()
    )
    app = create_app(services)
    app.state.login_failures = FailureLock(max_delay=0.0)  # the lock, without the waits
    with serve_app(app) as base_url, httpx.Client(base_url=base_url) as client:
        yield services, client


def token(text: str, name: str = "csrf_token") -> str:
    """The value of the hidden input ``name`` in a page."""
    found = re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', text)
    assert found, f"no {name} in the page"
    return html.unescape(found.group(1))


def studio_cookie(services: Services) -> dict[str, str]:
    """A studio session cookie, made the way a login makes it."""
    app = SimpleNamespace(state=SimpleNamespace(services=services))
    response = Response()
    auth.start_session(response, Request({"type": "http", "app": app, "headers": []}))
    value = response.headers["set-cookie"].split(";", 1)[0]
    return {"Cookie": value}


# -- a reader part-way through a sequence ---------------------------------------------------

SLUG = "what-i-actually-do"
READER = "reader@example.org"
GOAL_NOW = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def reader_after_two_steps(settings: Settings, engine: Engine) -> tuple[Services, FakeClock]:
    """Two steps received, the third queued in the outbox."""
    clock = FakeClock(GOAL_NOW)
    services = services_for(settings, engine, clock, FakeProvider())
    subscribe_and_confirm(services, clock, READER, SLUG)
    for _ in range(2):
        planning.plan(engine, services.catalogue, settings, now=clock.now())
        services.dispatcher.dispatch()
        clock.advance(days=5)
    planning.plan(engine, services.catalogue, settings, now=clock.now())
    return services, clock


# -- a fake SendGrid ---------------------------------------------------------------------------

API_KEY = "SG.test-key"


def sendgrid_settings(settings: Settings, fake: FakeSendGrid, **update: Any) -> Settings:
    values: dict[str, Any] = {
        "delivery": "sendgrid",
        "sendgrid_api_key": SecretStr(API_KEY),
        "sendgrid_host": fake.url,
        "sendgrid_timeout": 5.0,
    }
    values.update(update)
    return settings.model_copy(update=values)


def services_with(
    settings: Settings, engine: Engine, clock: FakeClock, provider: Any = None
) -> Services:
    """Services on ``clock`` whose waits (a 429, MAX_SEND_RATE) are simulated by it."""
    services = build_services(settings, clock=clock.now, engine=engine, provider=provider)
    services.dispatcher.sleep = lambda seconds: None
    return services
