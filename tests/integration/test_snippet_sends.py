"""A snippet edited while the service runs reaches the next email sent (issue 14, item 6).

The real core (sign-up, confirmation, planning, dispatch) over a private copy of the
campaigns: the first letter goes out with the snippet as it was; the file is edited;
the next pass reloads the catalogue, and the next letter carries the new text.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from html import unescape
from pathlib import Path

from sqlalchemy import Engine

from nurture.runtime import jobs
from nurture.settings import Settings
from nurture.testing import FakeClock, FakeProvider
from tests.helpers import sends_to, services_for, subscribe_and_confirm

READER = "reader@example.org"
SLUG = "beginning-therapy"
ADDED = "I answer on Tuesdays and Fridays."


def _flat(text: str) -> str:
    return " ".join(unescape(text).split())


def test_a_snippet_edit_reaches_the_next_send(
    settings: Settings, sqlite_engine: Engine, tmp_path: Path
) -> None:
    root = tmp_path / "campaigns"
    shutil.copytree(settings.campaigns_dir, root)
    settings = settings.model_copy(update={"campaigns_dir": root})
    clock = FakeClock(datetime(2026, 5, 4, 9, 0, tzinfo=UTC))
    provider = FakeProvider()
    services = services_for(settings, sqlite_engine, clock, provider)
    subscribe_and_confirm(services, clock, READER, SLUG, timezone="Europe/London")

    def letters() -> dict[str, str]:
        sent = {}
        for address, batch in provider.sent:
            if address == READER and batch.content.campaign == SLUG:
                sent[batch.content.step] = _flat(batch.content.text)
        return sent

    while "01-the-first-step" not in letters():
        jobs.tick(services)
        clock.advance(hours=6)
    first = letters()["01-the-first-step"]
    assert settings.reply_policy in first and ADDED not in first

    reply = root / "snippets" / "reply.md"
    reply.write_text(reply.read_text() + f"{ADDED}\n")

    for _ in range(4 * 30):
        if "06-questions-worth-asking" in letters():
            break
        jobs.tick(services)
        clock.advance(hours=6)
    later = letters()["06-questions-worth-asking"]
    assert f"{settings.reply_policy} {ADDED}" in later
    assert [step for _, step, _ in sends_to(services, READER)][:6] == [
        "01-the-first-step",
        "02-the-whole-picture",
        "03-trust-takes-time",
        "04-small-steps-and-setbacks",
        "05-your-part-in-it",
        "06-questions-worth-asking",
    ]
