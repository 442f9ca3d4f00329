"""Loading campaigns/ into a Catalogue: the model, delays, dates and structural errors."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from nurture.campaigns import (
    NEWSLETTERS,
    Catalogue,
    Newsletter,
    Step,
    load_catalogue,
    parse_delay,
)
from nurture.campaigns.loader import parse_local_datetime
from nurture.exceptions import CampaignError
from nurture.settings import Settings


@pytest.fixture
def catalogue(settings: Settings) -> Catalogue:
    return load_catalogue(settings)


@pytest.fixture
def copy(settings: Settings, tmp_path: Path) -> tuple[Settings, Path]:
    """Settings pointing at a private copy of the shipped campaigns."""
    root = tmp_path / "campaigns"
    shutil.copytree(settings.campaigns_dir, root)
    return settings.model_copy(update={"campaigns_dir": root}), root


def test_shipped_campaigns_load(catalogue: Catalogue) -> None:
    assert set(catalogue.campaigns) == {"what-i-actually-do", "beginning-therapy"}
    sequence = catalogue.campaigns["what-i-actually-do"]
    assert len(sequence.steps) >= 6
    assert len(catalogue.campaigns["beginning-therapy"].steps) >= 4
    assert sequence.article_url.startswith("https://")
    assert sequence.article_title
    assert sequence.send_window == (time(8), time(20))
    first = sequence.steps[0]
    assert first.slug == "01-welcome"
    assert first.delay == timedelta(0)
    assert sequence.steps[1].delay > timedelta(0)
    assert first.subject and first.preheader
    assert "{{ first_name }}" in first.body


def test_step_lookup(catalogue: Catalogue) -> None:
    campaign = catalogue.campaigns["what-i-actually-do"]
    assert campaign.step("02-saying-it-out-loud") is campaign.steps[1]
    assert campaign.index_of("02-saying-it-out-loud") == 1
    with pytest.raises(CampaignError):
        campaign.step("99-nope")
    with pytest.raises(CampaignError):
        campaign.index_of("99-nope")
    assert isinstance(catalogue.content_for("what-i-actually-do", "01-welcome"), Step)
    with pytest.raises(CampaignError):
        catalogue.content_for("no-such-campaign", "01-welcome")


def test_body_line_points_at_the_body(catalogue: Catalogue) -> None:
    step = catalogue.campaigns["what-i-actually-do"].steps[0]
    lines = step.path.read_text().splitlines()
    assert lines[step.body_line - 2] == "---"
    assert step.body.splitlines()[0] == lines[step.body_line - 1]


def test_newsletter_dates_are_utc_from_the_practice_zone(catalogue: Catalogue) -> None:
    newsletter = catalogue.content_for(NEWSLETTERS, "2026-12-08-winter-note")
    assert isinstance(newsletter, Newsletter)
    # 09:00 in London in December is 09:00 UTC.
    assert newsletter.send_at == datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
    assert newsletter.not_after == datetime(2026, 12, 10, 20, 0, tzinfo=UTC)
    assert catalogue.step_slugs(NEWSLETTERS) == ["2026-12-08-winter-note"]
    assert catalogue.first_name_fallback(NEWSLETTERS) == "there"


def test_local_datetime_follows_daylight_saving() -> None:
    zone = ZoneInfo("Europe/London")
    assert parse_local_datetime("2026-07-01 09:00", zone) == datetime(2026, 7, 1, 8, tzinfo=UTC)
    assert parse_local_datetime(datetime(2026, 7, 1, 9), zone) == datetime(
        2026, 7, 1, 8, tzinfo=UTC
    )
    for bad in ("2026-07-01", "tomorrow", 12, "2026-13-01 09:00"):
        with pytest.raises(ValueError):
            parse_local_datetime(bad, zone)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, timedelta(0)),
        ("0", timedelta(0)),
        ("2 days", timedelta(days=2)),
        ("1 day", timedelta(days=1)),
        ("36 hours", timedelta(hours=36)),
        ("2d", timedelta(days=2)),
        ("12h", timedelta(hours=12)),
        ("90 minutes", timedelta(minutes=90)),
        ("1 week", timedelta(weeks=1)),
    ],
)
def test_parse_delay(value: object, expected: timedelta) -> None:
    assert parse_delay(value) == expected


@pytest.mark.parametrize("value", [2, "2", "two days", "-1 day", "3 fortnights", True, None, ""])
def test_parse_delay_refuses(value: object) -> None:
    with pytest.raises(ValueError):
        parse_delay(value)


def test_other_top_level_files_are_ignored(copy: tuple[Settings, Path]) -> None:
    settings, root = copy
    (root / "NOTES.md").write_text("anything")
    assert (root / "SOURCES.md").exists()
    assert set(load_catalogue(settings).campaigns) == {"what-i-actually-do", "beginning-therapy"}


def test_first_error_raises_with_path_and_line(copy: tuple[Settings, Path]) -> None:
    settings, root = copy
    path = root / "beginning-therapy" / "02-the-whole-picture.md"
    text = path.read_text().replace('delay: "2 days"', 'delay: "soon"')
    path.write_text(text)
    with pytest.raises(CampaignError) as caught:
        load_catalogue(settings)
    assert caught.value.path == str(path)
    assert caught.value.line == 4
    assert str(caught.value).startswith(f"{path}:4: bad delay 'soon'")


def test_unlisted_and_missing_step_files(copy: tuple[Settings, Path]) -> None:
    settings, root = copy
    folder = root / "beginning-therapy"
    (folder / "05-your-part-in-it.md").rename(folder / "06-renamed.md")
    with pytest.raises(CampaignError, match="05-your-part-in-it"):
        load_catalogue(settings)


def test_missing_campaigns_folder(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(CampaignError, match="campaigns folder not found"):
        load_catalogue(settings.model_copy(update={"campaigns_dir": tmp_path / "nope"}))


def test_nothing_is_cached(copy: tuple[Settings, Path]) -> None:
    settings, root = copy
    before = load_catalogue(settings)
    path = root / "beginning-therapy" / "01-the-first-step.md"
    path.write_text(path.read_text().replace("subject:", 'subject: "Changed"\nx_subject:', 1))
    with pytest.raises(CampaignError, match="unknown key 'x_subject'"):
        load_catalogue(settings)
    assert before.campaigns["beginning-therapy"].steps[0].subject != "Changed"
