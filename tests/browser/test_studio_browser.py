"""The studio in Debian's headless chromium: the therapist's whole path, and axe-core on
every studio page at a desktop and a phone width.

The path: log in, edit the first email's subject, watch the preview change, save; a
reader signs up and confirms; one tick later the email sent carries the new subject,
with no restart. axe-core (from npm, ``make install`` puts it under
``tests/browser/node``) runs the WCAG 2.1 A and AA rules on every page at 1280 and
390 px; no serious or critical violation may remain. Screenshots of every page go to
``$NURTURE_SCREENSHOTS`` when it is set (to look at them), else to the test's folder.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from nurture.runtime import jobs
from nurture.runtime.services import Services, build_services
from nurture.settings import Settings
from nurture.web.app import create_app
from nurture.web.studio.auth import hash_password
from tests.browser.audit import AXE, PASSWORD, WIDTHS, audit, axe_violations, log_in, wait_for_mail
from tests.helpers import ROOT, serve_app

pytestmark = pytest.mark.browser

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # midday in Vienna: inside the send window
ZONE = "Europe/Vienna"
CAMPAIGN = "what-i-actually-do"
FIRST = "01-welcome"


@pytest.fixture
def studio(
    settings: Settings, tmp_path: Path, sqlite_engine: Engine
) -> Iterator[tuple[Services, str]]:
    shutil.copytree(ROOT / "campaigns", tmp_path / "campaigns")
    configured = settings.model_copy(
        update={
            "campaigns_dir": tmp_path / "campaigns",
            "base_url": "http://127.0.0.1:8000",
            "studio_password_hash": SecretStr(hash_password(PASSWORD)),
            "test_recipient": "me@example.org",
        }
    )
    services = build_services(configured, engine=sqlite_engine, clock=lambda: NOW)
    with serve_app(create_app(services)) as base_url:
        yield services, base_url


def test_edit_preview_save_and_the_next_send_carries_it(
    browser: Any, studio: tuple[Services, str]
) -> None:
    services, base_url = studio
    context = browser.new_context(timezone_id=ZONE, viewport={"width": 1280, "height": 900})
    page = context.new_page()

    # 1. Log in.
    log_in(page, base_url)

    # 2-3. Edit the first email's subject; the preview follows as she types.
    page.goto(f"{base_url}/studio/campaigns/{CAMPAIGN}/{FIRST}")
    assert page.locator("#lock-subject").inner_text() == "A note to start with"
    page.get_by_label(re.compile("^Subject")).fill("Before we begin, a short note")
    page.locator("#lock-subject", has_text="Before we begin, a short note").wait_for()
    page.locator("#preview-status", has_text="Preview up to date").wait_for()
    frame = page.locator('.panel[data-panel="phone"] iframe')
    assert "Before we begin, a short note" in (frame.get_attribute("srcdoc") or "")

    # A word from the discretion list shows on the lock screen's warnings at once.
    page.get_by_label(re.compile("^Preview text")).fill(
        "Notes on desire and what happens in my room"
    )
    page.locator("#p-lock", has_text="lock screen").wait_for()
    page.get_by_label(re.compile("^Preview text")).fill("What these letters are, and my room")
    page.locator("#preview-status", has_text="Preview up to date").wait_for()

    # 4. Save.
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(re.compile(r".*done=saved"))
    assert "Saved." in page.locator(".notice").inner_text()

    # 5. A reader signs up and confirms; one tick sends the first email.
    reader = context.new_page()
    reader.goto(f"{base_url}/subscribe/{CAMPAIGN}")
    reader.get_by_label("Email address").fill("reader@example.com")
    reader.get_by_label(re.compile("Yes, please email me")).check()
    reader.get_by_role("button", name="Sign up").click()
    reader.wait_for_url(f"{base_url}/subscribe")
    folder = services.settings.resolved_mail_dir
    [confirmation] = wait_for_mail(folder, 1)
    body = confirmation.get_body(preferencelist=("plain",))
    assert body is not None
    link = re.search(r"https?://\S+/confirm/[A-Za-z0-9._-]+", str(body.get_content()))
    assert link is not None
    reader.goto(base_url + urlsplit(link[0]).path)
    reader.get_by_role("button", name="Confirm").click()
    reader.get_by_text("You're confirmed").wait_for()
    jobs.tick(services)

    # 6. The email sent carries the new subject: no restart happened.
    _, welcome = wait_for_mail(folder, 2)
    assert welcome["Subject"] == "Before we begin, a short note"
    context.close()


# -- accessibility and screenshots -------------------------------------------------------------


def studio_pages(page: Any, base_url: str) -> Iterator[str]:
    """Visits every studio page in turn (forms submitted where a page follows a POST)."""
    step = f"{base_url}/studio/campaigns/{CAMPAIGN}/02-saying-it-out-loud"
    page.goto(f"{base_url}/studio/campaigns")
    yield "campaigns"
    page.goto(step)
    page.locator("#preview-status").wait_for(state="attached")
    yield "step"
    page.get_by_label(re.compile("^Subject")).fill("Saying it out loud: the first time")
    page.locator("#preview-status", has_text="Preview up to date").wait_for()
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(re.compile(r".*done=saved"))
    yield "step-saved"
    page.goto(step + "/history")
    yield "history"
    page.get_by_role("link", name=re.compile("^Open")).first.click()
    page.wait_for_url(re.compile(r".*/history/.+"))
    yield "version"
    page.goto(step)
    page.get_by_role("button", name="Send test").click()
    page.wait_for_url(re.compile(r".*/test$"))
    yield "tested"
    page.goto(f"{base_url}/studio/campaigns/{CAMPAIGN}/steps")
    yield "arrange"
    page.get_by_role("button", name=re.compile("^Move down")).first.click()
    page.wait_for_url(re.compile(r".*/steps/review$"))
    yield "review"
    page.goto(f"{base_url}/studio/campaigns/{CAMPAIGN}/new")
    yield "new-step"
    page.goto(f"{base_url}/studio/newsletters/new")
    yield "newsletter-new"
    page.goto(f"{base_url}/studio/newsletters/2026-12-08-winter-note")
    yield "newsletter"
    page.goto(f"{base_url}/studio/newsletters/2026-12-08-winter-note/cancel")
    yield "newsletter-cancel"


@pytest.mark.parametrize("width", WIDTHS)
def test_every_studio_page_passes_axe(
    browser: Any, studio: tuple[Services, str], width: int, tmp_path: Path
) -> None:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `make install` (npm install axe-core)")
    _, base_url = studio
    shots = Path(os.environ.get("NURTURE_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    # The studio's CSP allows only its own script; axe is injected as an inline script.
    context = browser.new_context(viewport={"width": width, "height": 900}, bypass_csp=True)
    page = context.new_page()
    page.goto(f"{base_url}/studio/login")
    login = axe_violations(page)
    page.screenshot(path=str(shots / f"login-{width}.png"), full_page=True)
    log_in(page, base_url)
    found = audit(page, studio_pages(page, base_url), shots, width)
    context.close()
    problems = {**({"login": [(v["id"], v["impact"]) for v in login]} if login else {}), **found}
    assert problems == {}


def test_the_operator_preview_and_the_error_page_fit_a_phone(
    browser: Any, studio: tuple[Services, str]
) -> None:
    _, base_url = studio
    context = browser.new_context(viewport={"width": 390, "height": 844}, bypass_csp=True)
    page = context.new_page()
    for path in ("/preview", f"/preview/{CAMPAIGN}/{FIRST}", "/no-such-page"):
        page.goto(base_url + path)
        page.wait_for_load_state("load")
        wide = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        assert not wide, f"{path} scrolls sideways on a phone"
        assert axe_violations(page) == [], path
    context.close()
