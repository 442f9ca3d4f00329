"""The issue's end-to-end path in Debian's headless chromium, against uvicorn on loopback.

Sign up through the form, confirm from the email the folder backend wrote, receive the
first sequence email, unsubscribe from its link: the queued later step is cancelled.
Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from nurture.delivery import planning
from nurture.runtime.services import build_services
from nurture.settings import Settings
from nurture.store import suppressions as suppression_ops
from nurture.store.schema import enrolments, outbox
from nurture.web.app import create_app
from tests.browser.audit import wait_for_mail
from tests.helpers import CAMPAIGN, rows, serve_app, subscriber

# The whole path runs on an injected clock: a fixed instant at midday in the reader's
# zone, inside the 08:00-20:00 send window whatever the hour the suite runs at. The zone
# has one canonical name in both tzdata and chromium's ICU (Asia/Kolkata, for one, is
# reported by chromium as "Asia/Calcutta").
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ZONE = "Europe/Vienna"

pytestmark = pytest.mark.browser


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def local(url: str, base_url: str) -> str:
    """The same path on the test server (the email links use BASE_URL's origin)."""
    parts = urlsplit(url)
    return base_url + parts.path


def test_sign_up_confirm_receive_and_unsubscribe(
    browser: Any, settings: Settings, engine: Engine
) -> None:
    assert settings.delivery == "folder"
    services = build_services(settings, engine=engine, clock=lambda: NOW)
    folder = settings.resolved_mail_dir
    zone = ZONE
    assert 10 <= NOW.astimezone(ZoneInfo(zone)).hour < 17
    with serve_app(create_app(services)) as base_url:
        context = browser.new_context(timezone_id=zone, viewport={"width": 390, "height": 844})
        page = context.new_page()

        # 1. The reader signs up at the end of the article.
        page.goto(f"{base_url}/subscribe/{CAMPAIGN}")
        page.get_by_label("Email address").fill("reader@example.com")
        page.get_by_label("First name").fill("Robin")
        page.get_by_label(re.compile("Yes, please email me")).check()
        page.get_by_role("button", name="Sign up").click()
        page.wait_for_url(f"{base_url}/subscribe")
        assert "Please check your inbox" in page.content()
        assert "reader@example.com" not in page.content()
        row = subscriber(engine, "reader@example.com")
        assert (row.status, row.first_name, row.timezone) == ("pending", "Robin", zone)

        # 2. The confirmation email is in the folder; its link shows a page with one button.
        [confirmation] = wait_for_mail(folder, 1)
        assert confirmation["To"] == "reader@example.com"
        assert "List-Unsubscribe" not in confirmation  # transactional
        confirm_url = re.search(r"https?://\S+/confirm/[A-Za-z0-9._-]+", text_of(confirmation))
        assert confirm_url is not None
        assert confirm_url[0].startswith(settings.base_url)
        page.goto(local(confirm_url[0], base_url))
        assert subscriber(engine, "reader@example.com").status == "pending"  # GET changed nothing
        assert "Robin" not in page.content()  # an unconfirmed name is never shown
        page.get_by_role("button", name="Confirm").click()
        page.get_by_text("You're confirmed").wait_for()

        # 3. Confirmed and enrolled, the first step due at once.
        assert subscriber(engine, "reader@example.com").status == "confirmed"
        [enrolment] = rows(engine, enrolments)
        now = NOW
        assert (enrolment.campaign, enrolment.status, enrolment.next_step) == (
            CAMPAIGN,
            "active",
            0,
        )
        assert enrolment.next_due_at <= now

        # 4. The scheduler sends the first step, and queues the next one when it falls due.
        planning.plan(engine, services.catalogue, settings, now=now)
        report = services.dispatcher.dispatch()
        assert report.sent == 1
        _, welcome = wait_for_mail(folder, 2)
        assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        planning.plan(engine, services.catalogue, settings, now=now + timedelta(days=3))
        later = rows(engine, outbox, outbox.c.kind == "sequence", outbox.c.status == "queued")
        assert [r.step for r in later] == ["02-saying-it-out-loud"]

        # 5. The reader unsubscribes from the sequence email's link.
        unsubscribe_url = re.search(r"https?://\S+/unsubscribe/[A-Za-z0-9._-]+", text_of(welcome))
        assert unsubscribe_url is not None
        assert f"<{unsubscribe_url[0]}>" in welcome["List-Unsubscribe"]
        page.goto(local(unsubscribe_url[0], base_url))
        assert subscriber(engine, "reader@example.com").status == "confirmed"
        page.get_by_role("button", name="Unsubscribe from everything").click()
        page.get_by_text("You're unsubscribed").wait_for()
        context.close()

    assert subscriber(engine, "reader@example.com").status == "unsubscribed"
    assert [r.status for r in rows(engine, outbox, outbox.c.id == later[0].id)] == ["cancelled"]
    assert rows(engine, enrolments)[0].status == "stopped"
    with engine.connect() as conn:
        assert suppression_ops.is_suppressed(conn, settings, "reader@example.com")
    assert (
        planning.plan(
            engine, services.catalogue, settings, now=now + timedelta(days=30)
        ).sequence_rows
        == 0
    )
