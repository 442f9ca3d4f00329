"""The studio's later pages over real HTTP: one subscriber found by exact address (then
unsubscribed or erased, each after a confirmation), a new sequence drafted from an
article, snippets edited like steps, and each sequence's behaviour in plain words."""

from __future__ import annotations

import html
import logging
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select

from nurture.campaigns import history
from nurture.runtime.services import Services
from nurture.settings import Settings
from nurture.store.schema import consents, subscribers
from nurture.testing import FakeClock
from tests.helpers import ROOT, subscribe_and_confirm
from tests.integration.support import serve, token

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
CAMPAIGN = "what-i-actually-do"
READER = "reader@example.org"
ARTICLE = ROOT / "tests" / "data" / "articles" / "beginning-therapy.txt"
URL = "https://www.example-practice.com/articles/beginning-therapy-again"


@pytest.fixture
def studio(
    studio_settings: Settings, sqlite_engine: Engine
) -> Iterator[tuple[Services, httpx.Client]]:
    """Development without a password (open to loopback after one button), one reader."""
    for served in serve(studio_settings, sqlite_engine):
        services, client = served
        subscribe_and_confirm(services, FakeClock(NOW), READER, CAMPAIGN)
        page = client.get("/studio/login")
        client.post("/studio/login", data={"csrf_token": token(page.text)})
        yield served


@pytest.fixture
def studio_settings(settings: Settings, tmp_path: Path) -> Settings:
    shutil.copytree(ROOT / "campaigns", tmp_path / "campaigns")
    return settings.model_copy(
        update={"campaigns_dir": tmp_path / "campaigns", "base_url": "http://127.0.0.1:8000"}
    )


def csrf(client: httpx.Client, path: str = "/studio/subscribers") -> str:
    return token(client.get(path).text)


def status_of(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [str(s) for s in conn.execute(select(subscribers.c.status)).scalars()]


# -- subscriber lookup ----------------------------------------------------------------------


def test_one_subscriber_is_found_by_exact_address_only(
    studio: tuple[Services, httpx.Client], caplog: pytest.LogCaptureFixture
) -> None:
    _, client = studio
    caplog.set_level(logging.DEBUG)
    empty = client.get("/studio/subscribers", params={"email": READER})
    assert empty.status_code == 200 and READER not in empty.text  # no lookup by URL
    assert 'method="post" action="/studio/subscribers"' in empty.text

    found = client.post(
        "/studio/subscribers", data={"csrf_token": token(empty.text), "email": READER}
    )
    assert found.status_code == 200
    text = html.unescape(found.text)
    assert f'<h2 id="found">{READER}</h2>' in text
    assert "Confirmed" in text and "What I actually do" in text  # status, sequence
    assert "Signed up" in text and "form" in text  # the consent trail
    assert "Confirmation email" in text  # the sends

    for fragment in ("reader@", "reader", "example.org", "READER@EXAMPLE"):
        partial = client.post(
            "/studio/subscribers", data={"csrf_token": token(empty.text), "email": fragment}
        )
        assert partial.status_code == 200
        assert "No subscriber with this address" in partial.text
        assert READER not in partial.text
    # An address is normalised as sign-up stores it: the case of the domain does not matter.
    upper = client.post(
        "/studio/subscribers", data={"csrf_token": token(empty.text), "email": "reader@EXAMPLE.org"}
    )
    assert "No subscriber with this address" not in upper.text

    refused = client.post("/studio/subscribers", data={"email": READER})
    assert refused.status_code == 403
    assert READER not in caplog.text  # no address in any log line (access log included)


def test_unsubscribe_then_erase_each_after_a_confirmation(
    studio: tuple[Services, httpx.Client],
) -> None:
    services, client = studio
    engine = services.engine
    form = {"csrf_token": csrf(client), "email": READER}

    asked = client.post("/studio/subscribers/unsubscribe", data=form)
    assert asked.status_code == 200 and "Unsubscribe reader@example.org?" in asked.text
    assert status_of(engine) == ["confirmed"]  # nothing changed yet
    assert (
        client.post(
            "/studio/subscribers/unsubscribe", data={**form, "confirm": "yes", "csrf_token": "x"}
        ).status_code
        == 403
    )
    done = client.post("/studio/subscribers/unsubscribe", data={**form, "confirm": "yes"})
    assert done.status_code == 200 and "Unsubscribed." in done.text
    assert status_of(engine) == ["unsubscribed"]
    with engine.connect() as conn:
        channels = conn.execute(
            select(consents.c.channel).where(consents.c.action == "withdraw")
        ).scalars()
        assert list(channels) == ["studio"]

    asked = client.post("/studio/subscribers/erase", data=form)
    assert asked.status_code == 200 and "cannot be undone" in asked.text
    assert status_of(engine) == ["unsubscribed"]
    erased = client.post("/studio/subscribers/erase", data={**form, "confirm": "yes"})
    assert erased.status_code == 200 and "Erased." in erased.text
    assert status_of(engine) == []
    again = client.post("/studio/subscribers", data=form)
    assert "No subscriber with this address" in again.text and "suppression list" in again.text


# -- a new sequence from an article ---------------------------------------------------------


def test_a_new_sequence_from_an_uploaded_article(studio: tuple[Services, httpx.Client]) -> None:
    services, client = studio
    folder = Path(services.settings.campaigns_dir) / "beginning-therapy-again"
    page = client.get("/studio/campaigns/new")
    assert page.status_code == 200 and 'enctype="multipart/form-data"' in page.text
    fields = {"csrf_token": token(page.text), "url": URL, "title": "What to expect", "slug": ""}
    upload = {"article_file": ("beginning.txt", ARTICLE.read_bytes(), "text/plain")}

    shown = client.post("/studio/campaigns/new", data=fields, files=upload)
    assert shown.status_code == 200, shown.text
    text = html.unescape(shown.text)
    for heading in (
        "The Holistic Nature of Sexual Health Treatment",
        "Navigating Vulnerability and Building Trust",
        "The Realistic Timeline for Meaningful Change",
    ):
        assert f"From the section “{heading}”" in text
    assert "Part 2: The Holistic Nature…" in text  # a draft subject, cut before "Sexual"
    assert "“Deciding to seek professional help" in text  # a key point, quoted as a note
    assert not folder.exists()  # nothing written yet

    create = re.search(
        r'<form method="post" action="/studio/campaigns/new">(.*?)</form>', shown.text, re.S
    )
    assert create
    hidden = {
        name: html.unescape(value)
        for name, value in re.findall(r'name="([a-z_]+)" value="([^"]*)"', create.group(1))
    }
    assert hidden["slug"] == "beginning-therapy-again" and hidden["action"] == "create"
    made = client.post("/studio/campaigns/new", data=hidden)
    assert made.status_code == 303
    assert made.headers["location"] == "/studio/signup-form/beginning-therapy-again?done=created"
    assert (folder / "campaign.yaml").is_file() and len(list(folder.glob("*.md"))) == 5
    campaign = services.catalogue.campaign("beginning-therapy-again")  # live, no restart
    assert campaign.steps == () and len(campaign.drafts) == 5

    form = client.get(made.headers["location"])
    snippet = html.unescape(form.text)
    assert '<form class="nurture-form" method="post"' in snippet
    assert '<input type="hidden" name="campaign" value="beginning-therapy-again">' in snippet
    assert "No email of this sequence is published yet" in form.text

    again = client.post("/studio/campaigns/new", data=hidden)
    assert again.status_code == 422 and "already a sequence" in again.text
    listing = client.get("/studio/campaigns").text
    assert "draft: never sent" in listing


def test_a_new_sequence_refuses_what_will_not_do(studio: tuple[Services, httpx.Client]) -> None:
    _, client = studio
    token_ = csrf(client, "/studio/campaigns/new")
    base = {"csrf_token": token_, "url": URL, "title": "What to expect"}
    pasted = client.post(
        "/studio/campaigns/new",
        data={**base, "url": "http://x.test/a", "article": ARTICLE.read_text()},
    )
    assert pasted.status_code == 422 and "https://" in pasted.text
    wrong = client.post(
        "/studio/campaigns/new",
        data=base,
        files={"article_file": ("a.pdf", b"%PDF", "application/pdf")},
    )
    assert wrong.status_code == 422 and ".md or .txt" in wrong.text
    forged = client.post(
        "/studio/campaigns/new",
        data={**base, "csrf_token": "forged"},
        files={"article_file": ("a.txt", b"Title\n\nText.", "text/plain")},
    )
    assert forged.status_code == 403


# -- snippets -------------------------------------------------------------------------------


def test_snippets_show_where_they_are_used_and_save_like_a_step(
    studio: tuple[Services, httpx.Client],
) -> None:
    services, client = studio
    listing = client.get("/studio/snippets")
    assert listing.status_code == 200
    assert 'href="/studio/snippets/consultation"' in listing.text
    assert f'href="/studio/campaigns/{CAMPAIGN}/' in listing.text  # where it is used
    assert "what-i-actually-do/" in listing.text  # the file

    path = Path(services.settings.campaigns_dir) / "snippets" / "consultation.md"
    before = path.read_text()
    page = client.get("/studio/snippets/consultation")
    fields = {"csrf_token": token(page.text), "base": token(page.text, "base")}
    bad = client.post("/studio/snippets/consultation", data={**fields, "body": "{{ frist_name }}"})
    assert bad.status_code == 422 and "frist_name" in bad.text
    assert path.read_text() == before
    forged = client.post(
        "/studio/snippets/consultation", data={**fields, "csrf_token": "", "body": "x"}
    )
    assert forged.status_code == 403

    new = before.rstrip("\n") + "\n\nA new closing line.\n"
    saved = client.post("/studio/snippets/consultation", data={**fields, "body": new})
    assert saved.status_code == 303 and path.read_text() == new
    assert services.catalogue.snippets["consultation"].body == new  # live at once
    root = Path(services.settings.campaigns_dir)
    [version] = history.versions(root, path)
    shown = client.get(f"/studio/snippets/consultation/history/{version.id}")
    restored = client.post(
        f"/studio/snippets/consultation/history/{version.id}",
        data={"csrf_token": token(shown.text), "base": token(shown.text, "base")},
    )
    assert restored.status_code == 303 and path.read_text() == before
    assert client.get("/studio/snippets/no-such").status_code == 404
    assert 'href="/studio/snippets/reply"' in client.get("/studio/campaigns").text


# -- behaviour in plain words ---------------------------------------------------------------


def test_each_sequence_says_how_it_behaves(studio: tuple[Services, httpx.Client]) -> None:
    services, client = studio
    yaml = Path(services.settings.campaigns_dir) / CAMPAIGN / "campaign.yaml"
    assert "hold:" not in yaml.read_text() and "send_days:" not in yaml.read_text()
    yaml.write_text(yaml.read_text() + "hold: true\nsend_days: weekdays\n")
    page = html.unescape(client.get("/studio/campaigns").text)
    section = page[page.index(f'id="c-{CAMPAIGN}"') :]
    section = section[: section.index("</section>")]
    assert "Evergreen: readers who finish get emails you add later." in section
    assert "Goes out on weekdays only" in section
    assert "Stops when the reader books." in section
    other = page[page.index('id="c-beginning-therapy"') :]
    assert (
        "Readers who finish are done; emails you add later reach only readers who haven't finished."
        in other
    )
    rule = "An email added before where a reader is is skipped for them, never sent at once."
    assert rule in page
    assert rule in client.get(f"/studio/campaigns/{CAMPAIGN}/steps").text
    assert rule in client.get(f"/studio/campaigns/{CAMPAIGN}/new").text
