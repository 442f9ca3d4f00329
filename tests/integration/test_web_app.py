"""The app shell over real HTTP: /healthz, /metrics, /dev/mail, error pages.

The app is served by uvicorn in a thread on loopback and driven with httpx, built
from real parts (``build_services``) on the ``engine`` fixture's database.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nurture.mail.messages import Batch, Content, Recipient, Sender
from nurture.runtime.health import Health
from nurture.runtime.services import Services, build_services
from nurture.settings import Settings
from nurture.testing import FakeProvider
from nurture.web.app import create_app
from tests.helpers import production_settings, serve_app


@pytest.fixture
def services(settings: Settings, engine: Engine) -> Services:
    return build_services(settings, provider=FakeProvider(), engine=engine)


# -- /healthz ------------------------------------------------------------------


def test_healthz_reports_the_last_tick(services: Services) -> None:
    finished = datetime.now(UTC).replace(microsecond=0)
    services.health.record("plan", started=finished - timedelta(seconds=2), finished=finished)
    with serve_app(create_app(services)) as url:
        response = httpx.get(f"{url}/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["scheduler"] == "ok"
    assert datetime.fromisoformat(body["last_tick"]) == finished
    assert response.headers["cache-control"] == "no-store"


def test_healthz_is_503_when_ticks_stopped(services: Services) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=1)
    stale = dataclasses.replace(
        services, health=Health(services.engine, tick_seconds=30, started_at=long_ago)
    )
    with serve_app(create_app(stale)) as url:
        response = httpx.get(f"{url}/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy"
    assert response.json()["scheduler"] == "no tick recorded"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=2",
        "sqlite:////nonexistent-nurture-dir/readonly/nurture.db",
    ],
    ids=["postgresql-port-closed", "sqlite-missing-dir"],
)
def test_healthz_is_503_when_the_database_is_unreachable(services: Services, url: str) -> None:
    unreachable = create_engine(url)
    # Only the health check gets the dead engine: the /metrics queue collector is
    # registered once per process, and must stay on a live database for other tests.
    broken = dataclasses.replace(
        services, health=Health(unreachable, tick_seconds=30, started_at=datetime.now(UTC))
    )
    try:
        with serve_app(create_app(broken)) as base:
            response = httpx.get(f"{base}/healthz")
    finally:
        unreachable.dispose()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["database"].startswith("unreachable")


# -- /metrics ------------------------------------------------------------------


def test_metrics_is_prometheus_text(services: Services) -> None:
    with serve_app(create_app(services)) as url:
        response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# TYPE nurture_outbox_rows gauge" in text
    assert "nurture_sends_total" in text
    assert "nurture_webhook_events_total" in text


# -- /dev/mail -----------------------------------------------------------------


def _write_eml(folder: Path, name: str, subject: str, to: str) -> Path:
    content = Content(
        campaign="what-i-actually-do",
        step="01-welcome",
        subject=subject,
        preheader="A preheader",
        html='<html><body><p>Hello <b>%%first_name|html%%</b> "quoted"</p></body></html>',
        text="Hello %%first_name%%, plain part here.\n",
    )
    batch = Batch(content, Sender("hello@practice.test", "Alex Morgan"), [])
    recipient = Recipient(
        to,
        values={"first_name": "Sam"},
        headers={
            "List-Unsubscribe": "<https://practice.test/unsubscribe/TOKEN>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(batch.mime(recipient).as_bytes())
    return path


@pytest.fixture
def dev_services(settings: Settings, sqlite_engine: Engine) -> Services:
    return build_services(settings, provider=FakeProvider(), engine=sqlite_engine)


def test_dev_mail_lists_and_shows_messages(dev_services: Services) -> None:
    folder = dev_services.settings.resolved_mail_dir
    older = _write_eml(folder, "0001-older.eml", "Older note", "first@example.org")
    newer = _write_eml(folder, "0002-newer.eml", "Newer note", "second@example.org")
    # A minute before the other file, by the file system's own clock (never ours: the
    # suite runs under a moved clock too, while the kernel stamps files with the real one).
    past = newer.stat().st_mtime - 60
    os.utime(older, (past, past))
    (folder / "notes.txt").write_text("not a message")

    with serve_app(create_app(dev_services)) as url:
        listing = httpx.get(f"{url}/dev/mail")
        message = httpx.get(f"{url}/dev/mail/0002-newer.eml")

    assert listing.status_code == 200
    assert listing.text.index("Newer note") < listing.text.index("Older note")
    assert "second@example.org" in listing.text
    assert "notes.txt" not in listing.text
    assert 'href="/dev/mail/0002-newer.eml"' in listing.text

    assert message.status_code == 200
    page = message.text
    assert "Newer note" in page
    assert "List-Unsubscribe-Post" in page
    assert "Hello Sam, plain part here." in page
    # The HTML part sits in a sandboxed iframe, escaped into its srcdoc attribute.
    sandboxes = re.findall(r'<iframe[^>]*\ssandbox="([^"]*)"', page)
    assert sandboxes and all("allow-scripts" not in value for value in sandboxes)
    assert (
        'srcdoc="&lt;html&gt;&lt;body&gt;&lt;p&gt;Hello &lt;b&gt;Sam&lt;/b&gt; &#34;quoted&#34;'
        in page
    )
    assert "<b>Sam</b>" not in page


def test_dev_mail_refuses_names_outside_the_folder(dev_services: Services) -> None:
    folder = dev_services.settings.resolved_mail_dir
    _write_eml(folder, "inside.eml", "Inside", "someone@example.org")
    _write_eml(folder.parent, "secret.eml", "Secret", "other@example.org")
    (folder / "link.eml").symlink_to(folder.parent / "secret.eml")

    with serve_app(create_app(dev_services)) as url:
        answers = {
            path: httpx.get(f"{url}{path}")
            for path in (
                "/dev/mail/..%2Fsecret.eml",
                "/dev/mail/%2E%2E%2Fsecret.eml",
                "/dev/mail/..%5Csecret.eml",
                "/dev/mail/link.eml",
                "/dev/mail/inside.txt",
                "/dev/mail/missing.eml",
            )
        }
        inside = httpx.get(f"{url}/dev/mail/inside.eml")
    assert inside.status_code == 200
    for path, response in answers.items():
        assert response.status_code == 404, path
        assert "Secret" not in response.text


def test_dev_mail_does_not_exist_in_production(tmp_path: Path, sqlite_engine: Engine) -> None:
    settings = production_settings(tmp_path)
    _write_eml(settings.resolved_mail_dir, "one.eml", "A message", "someone@example.org")
    services = build_services(settings, provider=FakeProvider(), engine=sqlite_engine)
    with serve_app(create_app(services)) as url:
        assert httpx.get(f"{url}/dev/mail").status_code == 404
        assert httpx.get(f"{url}/dev/mail/one.eml").status_code == 404


def test_dev_mail_needs_the_folder_backend(settings: Settings, sqlite_engine: Engine) -> None:
    console = settings.model_copy(update={"delivery": "console"})
    services = build_services(console, provider=FakeProvider(), engine=sqlite_engine)
    with serve_app(create_app(services)) as url:
        assert httpx.get(f"{url}/dev/mail").status_code == 404


# -- error pages ---------------------------------------------------------------


def test_unknown_path_is_a_friendly_404(dev_services: Services) -> None:
    with serve_app(create_app(dev_services)) as url:
        page = httpx.get(f"{url}/no/such/page", headers={"Accept": "text/html"})
        as_json = httpx.get(f"{url}/no/such/page", headers={"Accept": "application/json"})
        wrong_method = httpx.post(f"{url}/healthz")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "Page not found" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert as_json.status_code == 404
    assert as_json.json()["status"] == 404
    assert wrong_method.status_code == 405
    assert "GET" in wrong_method.headers["allow"]
    assert "Not possible here" in wrong_method.text


def test_unexpected_error_is_a_generic_500(
    dev_services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(request: Request) -> Response:
        raise RuntimeError("leaked jane.doe@example.com with token abc.def.ghi")

    app = create_app(dev_services)
    app.router.routes.append(Route("/boom/{token}", boom, name="boom"))
    with caplog.at_level(logging.ERROR), serve_app(app) as url:
        page = httpx.get(f"{url}/boom/abc.def.ghi")
        as_json = httpx.get(f"{url}/boom/abc.def.ghi", headers={"Accept": "application/json"})

    assert page.status_code == 500
    assert "Something went wrong" in page.text
    for text in (page.text, as_json.text):
        assert "Traceback" not in text
        assert "RuntimeError" not in text
        assert "jane.doe" not in text
    assert as_json.json() == {"error": as_json.json()["error"], "status": 500}
    assert page.headers["x-content-type-options"] == "nosniff"

    records = [r for r in caplog.records if getattr(r, "action", None) == "web.error"]
    assert records, "the error was not logged"
    logged = " ".join(r.getMessage() + str(vars(r)) for r in records)
    assert "/boom/{token}" in logged
    assert "RuntimeError" in logged
    assert "jane.doe" not in logged
    assert "abc.def.ghi" not in logged
    assert all(r.exc_info is None for r in records)
