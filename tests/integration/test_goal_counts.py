"""Goal counts (issue 14, item 7): "booked after email N" per sequence, aggregate only,
the same in ``/studio/api/stats``, the dashboard and ``nurture stats --json``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from sqlalchemy import Engine

from nurture.settings import Settings
from nurture.store import stats
from nurture.subscriptions import goals
from nurture.web.app import create_app
from tests.helpers import run_cli, serve_app
from tests.integration.support import READER, SLUG, reader_after_two_steps, studio_cookie


def test_booked_after_a_step_is_counted_alike_everywhere(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    services, clock = reader_after_two_steps(settings, engine)
    assert goals.reached(engine, services.catalogue, READER, "booked", now=clock.now()) == 1

    data = stats.read(engine, services.catalogue, now=clock.now())
    figures = data["campaigns"][SLUG]
    assert [s["booked_after"] for s in figures["steps"]][:3] == [0, 1, 0]
    assert figures["booked"] == 1 and figures["booked_before_first"] == 0
    assert data["campaigns"]["beginning-therapy"]["booked"] == 0

    with serve_app(create_app(services)) as base:
        api = httpx.get(base + "/studio/api/stats", headers=studio_cookie(services)).json()
        page = httpx.get(base + "/studio/", headers=studio_cookie(services)).text
    assert api["campaigns"] == data["campaigns"]
    section = page[page.index(f'id="seq-{SLUG}"') :]
    section = section[: section.index("</section>")]
    assert '<th scope="col">Booked after</th>' in section
    assert "1 booked a consultation and left the series" in section
    booked = re.findall(r"<td>(\d+)</td></tr>", section)  # the last column of each row
    assert [int(n) for n in booked] == [s["booked_after"] for s in figures["steps"]]
    assert READER not in page
    assert '<header class="top">' in page and 'href="/studio/snippets"' in page  # the shared frame

    if engine.url.get_backend_name() == "sqlite":  # the CLI reads the same database file
        env = {"NURTURE_DATABASE_URL": str(engine.url), "NURTURE_SECRET_KEYS": "x" * 40}
        result = run_cli(tmp_path, "stats", "--json", env=env)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["campaigns"] == data["campaigns"]
        table = run_cli(tmp_path, "stats", env=env).stdout
        assert "booked after" in table
