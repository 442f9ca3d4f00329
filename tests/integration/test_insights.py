"""Issue 10's acceptance: readers sign up, confirm, get mail, follow a link and leave;
then ``/studio/api/stats``, the dashboard and ``nurture stats --json`` tell the same
story as what was sent. Link ids are the same for every reader, forged ones 404, and
folding old mail keeps every total."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, func, select

from nurture.runtime import jobs
from nurture.runtime.services import Services
from nurture.settings import Settings
from nurture.store import stats
from nurture.store.schema import outbox
from nurture.testing import FakeClock, FakeProvider
from nurture.web.app import create_app
from tests.helpers import (
    last_value,
    run_cli,
    serve_app,
    services_for,
    subscribe_and_confirm,
    token_of,
)
from tests.integration.support import studio_cookie

CAMPAIGN = "what-i-actually-do"
READERS = ["ann@example.org", "bob@example.org", "cy@example.org"]
_LINK = re.compile(r"https://practice\.test/l/[A-Za-z0-9_.-]+")


def run_ticks(services: Services, clock: FakeClock, *, hours: int) -> None:
    for _ in range(hours):
        clock.advance(hours=1)
        jobs.tick(services)


def sent_marketing(provider: FakeProvider) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for batch in provider.batches:
        if batch.content.marketing:
            counts[(batch.content.campaign, batch.content.step)] += len(batch.recipients)
    return counts


def readers_month(settings: Settings, engine: Engine) -> tuple[Services, FakeClock, FakeProvider]:
    clock = FakeClock(datetime(2026, 11, 30, 10, 0, tzinfo=UTC))
    provider = FakeProvider()
    services = services_for(settings, engine, clock, provider)
    for email in READERS:
        subscribe_and_confirm(services, clock, email, CAMPAIGN, first_name="Ann")
    run_ticks(services, clock, hours=24 * 4)
    bob = last_value(services, "bob@example.org", "unsubscribe_url")
    services.subscriptions.unsubscribe(token_of(bob), channel="link", now=clock.now())
    run_ticks(services, clock, hours=24 * 6)  # the newsletter of 8 December goes out too
    return services, clock, provider


def test_stats_dashboard_and_cli_agree_with_what_was_sent(
    settings: Settings, engine: Engine, tmp_path: Any
) -> None:
    services, _clock, provider = readers_month(settings, engine)
    sent = sent_marketing(provider)
    assert sent[("newsletters", "2026-12-08-winter-note")] == 2  # bob left before it
    welcome = next(b for b in provider.batches if b.content.step == "01-welcome")
    target = _LINK.findall(welcome.content.html)[0]

    with serve_app(create_app(services)) as base:
        path = target.removeprefix("https://practice.test")
        answer = httpx.get(base + path, follow_redirects=False)
        assert answer.status_code == 302
        assert answer.headers["location"].startswith("https://www.example-practice.com")
        assert "set-cookie" not in answer.headers
        data = httpx.get(base + "/studio/api/stats", headers=studio_cookie(services)).json()
        page = httpx.get(base + "/studio/", headers=studio_cookie(services))

    steps = data["campaigns"][CAMPAIGN]["steps"]
    assert {(CAMPAIGN, s["step"]): s["sent"] for s in steps if s["sent"]} == {
        k: n for k, n in sent.items() if k[0] == CAMPAIGN
    }
    assert data["newsletters"]["2026-12-08-winter-note"]["sent"] == 2
    assert data["newsletters"]["2026-12-08-winter-note"]["unsubscribes_7d"] == 0
    assert steps[0]["clicks"] == 1 and sum(s["clicks"] for s in steps) == 1
    bob_received = sum(
        1 for (_, b) in provider.sent if _ == "bob@example.org" and b.content.marketing
    )
    assert steps[bob_received - 1]["stopped_after"] == 1
    assert sum(s["stopped_after"] for s in steps) == 1
    assert data["subscribers"] == {"pending": 0, "confirmed": 2, "unsubscribed": 1}
    weeks = data["weeks"]
    assert sum(w["signups"] for w in weeks) == 3
    assert sum(w["confirmations"] for w in weeks) == 3
    assert sum(w["unsubscribes"] for w in weeks) == 1

    assert page.status_code == 200
    html = page.text
    section = html[html.index(f'id="seq-{CAMPAIGN}"') :]
    section = section[: section.index("</section>")]
    assert "3 received the first email" in section
    for number, step in enumerate(steps, 1):
        row = re.search(
            rf"<td class=\"title\">{number}\. [^<]*<span.*?</span></td>"
            r"<td class=\"chartcell\">.*?</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>",
            section,
        )
        assert row and tuple(map(int, row.groups())) == (
            step["sent"],
            step["stopped_after"],
            step["clicks"],
        )
    assert not any(email in html for email in READERS)

    if engine.url.get_backend_name() == "sqlite":  # the CLI reads the same database file
        env = {"NURTURE_DATABASE_URL": str(engine.url), "NURTURE_SECRET_KEYS": "x" * 40}
        result = run_cli(tmp_path, "stats", "--json", env=env)
        assert result.returncode == 0, result.stderr
        cli = json.loads(result.stdout)
        assert {k: v for k, v in cli.items() if k not in ("generated_at", "weeks", "queue")} == {
            k: v for k, v in data.items() if k not in ("generated_at", "weeks", "queue")
        }
        table = run_cli(tmp_path, "stats", env=env).stdout
        assert "reached (sent)" in table and "stopped after" in table and "link clicks" in table


def test_link_ids_are_the_same_for_every_reader_and_forged_ones_404(
    settings: Settings, engine: Engine
) -> None:
    services, clock, provider = readers_month(settings, engine)
    letters = [b for b in provider.batches if b.content.campaign == "newsletters"]
    per_reader = set()
    for batch in letters:
        for recipient in batch.recipients:
            html, text = batch.content.personalise(recipient.values)
            per_reader.add(tuple(_LINK.findall(html)))
            assert "/archive/2026-12-08-winter-note" in html
            assert "View in your browser: https://practice.test/archive/" in text
            footer = html[html.index("Unsubscribe") - 200 :]
            assert "/unsubscribe/" in footer and "/l/" not in footer
    assert len(per_reader) == 1 and per_reader.pop()
    link = _LINK.findall(letters[0].content.html)[0]
    with serve_app(create_app(services)) as base:
        good = link.removeprefix("https://practice.test")
        forged = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
        for path in (forged, "/l/nothing", "/l/" + "x" * 5000):
            answer = httpx.get(base + path, follow_redirects=False)
            assert answer.status_code == 404 and "location" not in answer.headers
        # HEAD (link checkers) is answered but not counted
        assert httpx.head(base + good).status_code == 302
    with services.engine.connect() as conn:
        figures = stats.collect(conn, campaigns={}, newsletters=[], now=clock.now())
    assert figures["newsletters"]["2026-12-08-winter-note"]["clicks"] == 0  # HEAD only


def test_folding_old_mail_keeps_every_total(settings: Settings, engine: Engine) -> None:
    services, clock, _provider = readers_month(settings, engine)
    before = stats.read(services.engine, services.catalogue, now=clock.now())
    later = clock.now() + timedelta(days=settings.retention_sent_days + 1)
    folded = jobs.fold_old_mail(services, later)
    assert folded > 0
    with services.engine.connect() as conn:
        left = conn.execute(select(func.count()).select_from(outbox)).scalar_one()
    assert left == 0
    after = stats.read(services.engine, services.catalogue, now=clock.now())
    assert {k: v for k, v in after.items() if k != "queue"} == {
        k: v for k, v in before.items() if k != "queue"
    }


def test_erasing_a_reader_keeps_where_they_left(settings: Settings, engine: Engine) -> None:
    from nurture.subscriptions import gdpr

    services, clock, _provider = readers_month(settings, engine)
    before = stats.read(services.engine, services.catalogue, now=clock.now())
    gdpr.erase(services.engine, settings, "bob@example.org", clock.now())
    after = stats.read(services.engine, services.catalogue, now=clock.now())
    assert after["campaigns"] == before["campaigns"]
    assert after["subscribers"]["unsubscribed"] == 0
