"""The therapist's preview over real HTTP: every shipped email, both widths, basic auth."""

from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from markupsafe import escape
from sqlalchemy import Engine

from nurture.campaigns import NEWSLETTERS, load_catalogue
from nurture.runtime.services import Services, build_services
from nurture.settings import Settings
from nurture.testing import FakeProvider
from nurture.web.app import create_app
from tests.helpers import production_settings, serve_app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def services(settings: Settings, sqlite_engine: Engine) -> Services:
    return build_services(settings, provider=FakeProvider(), engine=sqlite_engine)


@pytest.fixture
def base_url(services: Services) -> Iterator[str]:
    with serve_app(create_app(services)) as url:
        yield url


def _every_email(settings: Settings) -> list[tuple[str, str, str]]:
    catalogue = load_catalogue(settings)
    emails = [
        (campaign.slug, step.slug, step.subject)
        for campaign in catalogue.campaigns.values()
        for step in campaign.steps
    ]
    emails += [(NEWSLETTERS, n.slug, n.subject) for n in catalogue.newsletters.values()]
    return emails


def test_index_lists_every_shipped_email(services: Services, base_url: str) -> None:
    response = httpx.get(f"{base_url}/preview")
    assert response.status_code == 200
    page = response.text
    emails = _every_email(services.settings)
    assert {c for c, _, _ in emails} >= {"what-i-actually-do", "beginning-therapy", NEWSLETTERS}
    for campaign, step, subject in emails:
        assert f'href="/preview/{campaign}/{step}"' in page
        assert str(escape(subject)) in page
    assert "at once" in page  # the first step's delay, in words
    assert "sends 2026-12-08 09:00" in page  # the newsletter's send time, practice-local


def test_every_step_page_renders_at_both_widths(services: Services, base_url: str) -> None:
    settings = services.settings
    with httpx.Client(base_url=base_url) as client:
        for campaign, step, subject in _every_email(settings):
            page = client.get(f"/preview/{campaign}/{step}")
            assert page.status_code == 200, (campaign, step)
            text = page.text
            assert str(escape(subject)) in text
            assert settings.from_email in text
            assert 'width="600"' in text and 'width="375"' in text
            assert text.count(f'src="/preview/{campaign}/{step}/html"') == 2
            assert '<pre class="text">' in text
            assert "https://practice.test/unsubscribe/SAMPLE-TOKEN" in text  # the text part

            raw = client.get(f"/preview/{campaign}/{step}/html")
            assert raw.status_code == 200, (campaign, step)
            assert raw.headers["content-type"].startswith("text/html")
            assert "Sam" in raw.text
            assert "https://practice.test/unsubscribe/SAMPLE-TOKEN" in raw.text
            assert "https://practice.test/preferences/SAMPLE-TOKEN" in raw.text
            assert "%%" not in raw.text and "{{" not in raw.text


def test_unknown_campaign_or_step_is_404(base_url: str) -> None:
    for path in (
        "/preview/no-such-campaign/01-welcome",
        "/preview/what-i-actually-do/99-nothing",
        "/preview/newsletters/no-such-letter",
        "/preview/what-i-actually-do/99-nothing/html",
    ):
        response = httpx.get(f"{base_url}{path}")
        assert response.status_code == 404, path
        assert "Page not found" in response.text


def test_a_broken_file_shows_its_problems_instead_of_crashing(
    settings: Settings, sqlite_engine: Engine, tmp_path: Path
) -> None:
    campaigns = tmp_path / "campaigns"
    shutil.copytree(ROOT / "campaigns", campaigns)
    editable = settings.model_copy(update={"campaigns_dir": campaigns})
    services = build_services(editable, provider=FakeProvider(), engine=sqlite_engine)
    with serve_app(create_app(services)) as url:
        clean = httpx.get(f"{url}/preview")
        # The therapist edits files while the service runs: first an indiscreet subject,
        # which `nurture check` flags but which does not stop the files loading...
        indiscreet = campaigns / "beginning-therapy" / "03-trust-takes-time.md"
        indiscreet.write_text(
            re.sub(
                r"^subject:.*$",
                'subject: "Your therapy questions"',
                indiscreet.read_text(),
                count=1,
                flags=re.MULTILINE,
            )
        )
        flagged = httpx.get(f"{url}/preview")
        # ...then a misspelt front matter key, which does.
        step = campaigns / "what-i-actually-do" / "02-saying-it-out-loud.md"
        step.write_text(step.read_text().replace("subject:", "subjcet:", 1))
        index = httpx.get(f"{url}/preview")
        step_page = httpx.get(f"{url}/preview/what-i-actually-do/01-welcome")
        step_html = httpx.get(f"{url}/preview/what-i-actually-do/01-welcome/html")

    assert clean.status_code == 200
    assert "found these" not in clean.text

    assert flagged.status_code == 200
    assert f"{indiscreet}:2: subject contains &#39;therapy&#39;" in flagged.text
    assert 'href="/preview/what-i-actually-do/01-welcome"' in flagged.text  # still listed

    for response in (index, step_page, step_html):
        assert response.status_code == 200
        assert f"{step}:2:" in response.text
        assert "cannot be shown until these are fixed" in response.text
        assert "Traceback" not in response.text
    assert 'href="/preview/what-i-actually-do/01-welcome"' not in index.text


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_production_preview_needs_basic_auth(tmp_path: Path, sqlite_engine: Engine) -> None:
    settings = production_settings(
        tmp_path, preview_username="therapist", preview_password="s3cret pass"
    )
    services = build_services(settings, provider=FakeProvider(), engine=sqlite_engine)
    paths = ["/preview", "/preview/what-i-actually-do/01-welcome"]
    paths.append("/preview/what-i-actually-do/01-welcome/html")
    with serve_app(create_app(services)) as url:
        for path in paths:
            anonymous = httpx.get(f"{url}{path}")
            assert anonymous.status_code == 401, path
            assert anonymous.headers["www-authenticate"].startswith("Basic ")
            for user, password in (
                ("therapist", "wrong"),
                ("someone", "s3cret pass"),
                ("therapist", ""),
                ("therapist", "s3cret pass!"),
            ):
                assert httpx.get(f"{url}{path}", headers=_basic(user, password)).status_code == 401
            assert (
                httpx.get(f"{url}{path}", headers={"Authorization": "Basic %%%"}).status_code == 401
            )
            allowed = httpx.get(f"{url}{path}", headers=_basic("therapist", "s3cret pass"))
            assert allowed.status_code == 200, path
            assert allowed.headers["cache-control"] == "no-store"
        # Production links in the sample point at the production base URL.
        page = httpx.get(f"{url}{paths[2]}", headers=_basic("therapist", "s3cret pass"))
        assert "https://practice.example.net/unsubscribe/SAMPLE-TOKEN" in page.text


def test_production_preview_without_credentials_does_not_exist(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    settings = production_settings(tmp_path, preview_username="therapist")  # no password
    services = build_services(settings, provider=FakeProvider(), engine=sqlite_engine)
    with serve_app(create_app(services)) as url:
        assert httpx.get(f"{url}/preview").status_code == 404
        with_guess = httpx.get(f"{url}/preview", headers=_basic("therapist", ""))
        assert with_guess.status_code == 404
