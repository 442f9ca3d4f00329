"""``preview`` files for every step: a complete, sendable .eml beside .mjml, .html and .txt."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import pytest

from nurture.campaigns import NEWSLETTERS, Catalogue, load_catalogue
from nurture.exceptions import CampaignError
from nurture.rendering.preview import SAMPLE_TOKEN, write_preview
from nurture.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def catalogue(settings: Settings) -> Catalogue:
    return load_catalogue(settings)


def _every_email(catalogue: Catalogue) -> list[tuple[str, str]]:
    keys = [(c.slug, s.slug) for c in catalogue.campaigns.values() for s in c.steps]
    return keys + [(NEWSLETTERS, slug) for slug in catalogue.newsletters]


def test_preview_writes_four_files_per_step(
    settings: Settings, catalogue: Catalogue, tmp_path: Path
) -> None:
    written = write_preview(settings, catalogue, "beginning-therapy", None, tmp_path)
    steps = catalogue.campaigns["beginning-therapy"].steps
    assert len(written) == 4 * len(steps)
    for step in steps:
        for suffix in (".mjml", ".html", ".txt", ".eml"):
            assert tmp_path / "beginning-therapy" / f"{step.slug}{suffix}" in written
    single = write_preview(settings, catalogue, "beginning-therapy", steps[0].slug, tmp_path)
    assert [p.suffix for p in single] == [".mjml", ".html", ".txt", ".eml"]


def test_unknown_campaign_or_step(settings: Settings, catalogue: Catalogue, tmp_path: Path) -> None:
    with pytest.raises(CampaignError):
        write_preview(settings, catalogue, "nope", None, tmp_path)
    with pytest.raises(CampaignError):
        write_preview(settings, catalogue, "beginning-therapy", "99-nope", tmp_path)


def _shipped() -> list[tuple[str, str]]:
    """Every shipped email, read at collection time so each gets its own test id."""
    settings = load_settings(
        env="test", campaigns_dir=ROOT / "campaigns", secret_keys="collect", _env_file=None
    )
    return _every_email(load_catalogue(settings))


@pytest.mark.parametrize(("campaign", "step"), _shipped())
def test_every_email_is_complete(
    settings: Settings, catalogue: Catalogue, tmp_path: Path, campaign: str, step: str
) -> None:
    written = write_preview(settings, catalogue, campaign, step, tmp_path)
    eml = next(p for p in written if p.suffix == ".eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)

    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    unsubscribe = f"{settings.base_url}/unsubscribe/{SAMPLE_TOKEN}"
    assert message["List-Unsubscribe"] == (
        f"<{unsubscribe}>, <mailto:unsubscribe+{SAMPLE_TOKEN}@{settings.mail_domain}>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Message-ID"]
    assert message["Subject"] == catalogue.content_for(campaign, step).subject
    assert message["To"] == "sample@example.com"

    text = parts[0].get_content()
    html = parts[1].get_content()
    assert unsubscribe in text
    assert settings.postal_address in text
    assert "Sam," in text  # the sample first name, however the greeting is worded
    for body in (text, html):
        assert "{{" not in body and "{%" not in body and "%%" not in body
    parser = _Strict()
    parser.feed(html)
    parser.close()
    assert {"html", "body"} <= parser.tags
    preheader = catalogue.content_for(campaign, step).preheader
    assert preheader in parser.text
    assert unsubscribe in html
    assert (tmp_path / campaign / f"{step}.txt").read_text() == text
    assert 'href="%%unsubscribe_url%%"' in (tmp_path / campaign / f"{step}.mjml").read_text()


class _Strict(HTMLParser):
    """Collects tags and text; html.parser never raises, so count what it found."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)

    def handle_data(self, data: str) -> None:
        self.text += data
