"""The public archive: pages and feed carry no reader's address, name or token, the
HTML parses, the feed is Atom, and caching works (ETag)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import httpx
from sqlalchemy import Engine, select

from nurture.runtime import jobs
from nurture.settings import Settings
from nurture.store.schema import subscribers
from nurture.testing import FakeClock, FakeProvider
from nurture.web.app import create_app
from tests.helpers import ROOT, serve_app, services_for, subscribe_and_confirm

ATOM = "{http://www.w3.org/2005/Atom}"
LETTER = "2026-12-08-winter-note"
READERS = ["annabel@example.org", "bartholomew@example.org"]
VOID = {"meta", "link", "br", "img", "hr", "input", "source", "wbr", "area", "col", "base"}


class Balanced(HTMLParser):
    """Fails on any element closed out of order: the page parses as a tree."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: object) -> None:
        pass  # <br />: opens nothing

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, (tag, self.open[-5:])
        self.open.pop()


def parses(html: str) -> None:
    parser = Balanced()
    parser.feed(html)
    parser.close()
    assert parser.open == []


def archived_settings(settings: Settings, tmp_path: Path) -> Settings:
    """The shipped campaigns, with ``archive: true`` on beginning-therapy."""
    folder = tmp_path / "campaigns"
    shutil.copytree(ROOT / "campaigns", folder)
    yaml = folder / "beginning-therapy" / "campaign.yaml"
    yaml.write_text(yaml.read_text() + "archive: true\n")
    return settings.model_copy(update={"campaigns_dir": folder})


def test_archive_pages_and_feed_are_public_and_personal_data_free(
    settings: Settings, sqlite_engine: Engine, tmp_path: Path
) -> None:
    settings = archived_settings(settings, tmp_path)
    clock = FakeClock(datetime(2026, 12, 7, 10, 0, tzinfo=UTC))
    provider = FakeProvider()
    services = services_for(settings, sqlite_engine, clock, provider)
    for email, name in zip(READERS, ["Annabel", "Bartholomew"], strict=True):
        subscribe_and_confirm(services, clock, email, "what-i-actually-do", first_name=name)
    for _ in range(48):
        clock.advance(hours=1)
        jobs.tick(services)
    with sqlite_engine.connect() as conn:
        public_ids = list(conn.execute(select(subscribers.c.public_id)).scalars())
    secrets = [*READERS, "Annabel", "Bartholomew", *public_ids, "/unsubscribe/", "/l/"]

    with serve_app(create_app(services)) as base:
        index = httpx.get(base + "/archive")
        page = httpx.get(f"{base}/archive/{LETTER}")
        step = httpx.get(base + "/archive/beginning-therapy/01-the-first-step")
        feed = httpx.get(base + "/archive.atom")
        again = httpx.get(
            f"{base}/archive/{LETTER}", headers={"If-None-Match": page.headers["etag"]}
        )
        missing = httpx.get(base + "/archive/no-such-letter")
        unsent_step = httpx.get(base + "/archive/what-i-actually-do/01-welcome")

    for answer in (index, page, step, feed):
        assert answer.status_code == 200
        assert answer.headers["etag"] and "public" in answer.headers["cache-control"]
        assert "set-cookie" not in answer.headers
        for secret in secrets:
            assert secret not in answer.text, secret
    assert again.status_code == 304 and again.content == b""
    assert missing.status_code == 404 and unsent_step.status_code == 404
    for answer in (index, page, step):
        parses(answer.text)
    assert f'href="/archive/{LETTER}"' in index.text
    assert "Hello there," in page.text  # the first-name fallback
    assert 'href="/subscribe/' in page.text and settings.practice_name in page.text
    assert 'href="/subscribe/beginning-therapy"' in step.text

    root = ElementTree.fromstring(feed.content)
    assert root.tag == f"{ATOM}feed"
    assert feed.headers["content-type"].startswith("application/atom+xml")
    for required in ("id", "title", "updated"):
        assert root.find(f"{ATOM}{required}") is not None
    entries = root.findall(f"{ATOM}entry")
    assert entries[0].findtext(f"{ATOM}id") == f"{settings.base_url}/archive/{LETTER}"
    assert len(entries) == 1 + 7  # the newsletter, then beginning-therapy's seven steps
    for entry in entries:
        for required in ("id", "title", "updated", "content"):
            assert entry.find(f"{ATOM}{required}") is not None
        datetime.fromisoformat(entry.findtext(f"{ATOM}updated", "").replace("Z", "+00:00"))
