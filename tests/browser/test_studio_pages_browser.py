"""The studio's later pages in Debian's headless chromium, at 1280 and 390 px: the
dashboard in the studio's frame, snippets, finding one subscriber (then unsubscribing
and erasing them), and a new sequence drafted from an uploaded article. axe-core runs
the WCAG 2.1 A and AA rules on each; no serious or critical violation may remain and
no page may scroll sideways. Screenshots go to ``$NURTURE_SCREENSHOTS`` when it is set.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from nurture.runtime.services import Services, build_services
from nurture.settings import Settings
from nurture.testing import FakeClock, FakeProvider
from nurture.web.app import create_app
from nurture.web.studio.auth import hash_password
from tests.browser.audit import AXE, PASSWORD, WIDTHS, audit, log_in
from tests.helpers import ROOT, serve_app, subscribe_and_confirm

pytestmark = pytest.mark.browser

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
READER = "reader@example.org"
ARTICLE = ROOT / "tests" / "data" / "articles" / "beginning-therapy.txt"


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
        }
    )
    services = build_services(
        configured, engine=sqlite_engine, clock=lambda: NOW, provider=FakeProvider()
    )
    subscribe_and_confirm(services, FakeClock(NOW), READER, "what-i-actually-do")
    with serve_app(create_app(services)) as base_url:
        yield services, base_url


def pages(page: Any, base_url: str) -> Iterator[str]:
    """Visits each page in turn, submitting the forms a page follows."""
    page.goto(f"{base_url}/studio/")
    yield "dashboard"
    page.goto(f"{base_url}/studio/campaigns")
    yield "campaigns"
    page.goto(f"{base_url}/studio/snippets")
    yield "snippets"
    page.get_by_role("link", name="consultation", exact=True).first.click()
    page.wait_for_url(re.compile(r".*/studio/snippets/consultation$"))
    yield "snippet"
    page.get_by_label(re.compile("^The snippet's text")).fill("{{ frist_name }}")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("Not saved").wait_for()
    yield "snippet-refused"

    page.goto(f"{base_url}/studio/subscribers")
    yield "subscribers"
    page.get_by_label(re.compile("^Email address")).fill(READER)
    page.get_by_role("button", name="Look up").click()
    page.get_by_role("heading", name=READER).wait_for()
    yield "subscriber"
    page.get_by_role("button", name="Unsubscribe…").click()
    page.get_by_role("heading", name=re.compile("^Unsubscribe")).wait_for()
    yield "subscriber-unsubscribe"
    page.get_by_role("button", name="Unsubscribe", exact=True).click()
    page.get_by_text("Unsubscribed. Their queued emails").wait_for()
    yield "subscriber-unsubscribed"
    page.get_by_role("button", name="Erase their data…").click()
    page.get_by_text("This cannot be undone").wait_for()
    yield "subscriber-erase"
    page.get_by_role("button", name="Erase", exact=True).click()
    page.get_by_text("Erased. Only a keyed hash").wait_for()
    yield "subscriber-erased"

    page.goto(f"{base_url}/studio/campaigns/new")
    yield "new-campaign"
    page.get_by_label(re.compile("^The article's address")).fill(
        "https://www.example-practice.com/articles/beginning-therapy-again"
    )
    page.get_by_label(re.compile("^Its title")).fill("What to Expect When You Begin")
    page.set_input_files("#article_file", str(ARTICLE))
    page.get_by_role("button", name="Show the proposed emails").click()
    page.get_by_role("heading", name="The proposed emails").wait_for()
    yield "new-campaign-proposal"
    page.get_by_role("button", name="Create the sequence").click()
    page.wait_for_url(re.compile(r".*/studio/signup-form/beginning-therapy-again\?done=created"))
    yield "new-campaign-signup-form"


@pytest.mark.parametrize("width", WIDTHS)
def test_the_later_studio_pages_pass_axe_and_fit(
    browser: Any, studio: tuple[Services, str], width: int, tmp_path: Path
) -> None:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `make install` (npm install axe-core)")
    services, base_url = studio
    shots = Path(os.environ.get("NURTURE_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": width, "height": 900}, bypass_csp=True)
    page = context.new_page()
    log_in(page, base_url)
    problems = audit(page, pages(page, base_url), shots, width)
    context.close()
    assert problems == {}
    assert "beginning-therapy-again" in services.catalogue.campaigns
