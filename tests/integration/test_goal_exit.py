"""Goal exit (issue 14): a reader who booked leaves the sequences that say
``stop_when: [booked]``, through the CLI or the API; the queued step is cancelled in
the same transaction, newsletters go on, and only aggregate counts are kept."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select

from nurture.delivery import planning
from nurture.runtime.services import Services
from nurture.settings import Settings
from nurture.store import goals as goal_ops
from nurture.store.schema import enrolments, goal_counts, outbox, subscribers
from nurture.subscriptions import goals
from nurture.testing import FakeClock
from nurture.web.api import hash_key
from nurture.web.app import create_app
from tests.helpers import run_cli, serve_app
from tests.integration.support import READER, SLUG, reader_after_two_steps

KEY = "a-booking-tool-key-0123456789abcdefghij"
NOW = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def state(engine: Engine) -> tuple[str, list[str], bool]:
    with engine.connect() as conn:
        enrolment = conn.execute(select(enrolments.c.status)).scalar_one()
        queued = conn.execute(
            select(outbox.c.status).where(outbox.c.kind == "sequence", outbox.c.status != "sent")
        ).scalars()
        wants = conn.execute(select(subscribers.c.newsletters)).scalar_one()
        return str(enrolment), list(queued), bool(wants)


def test_booked_stops_the_sequence_and_cancels_the_queued_step(
    settings: Settings, engine: Engine
) -> None:
    services, clock = reader_after_two_steps(settings, engine)
    assert state(engine) == ("active", ["queued"], True)
    assert goals.reached(engine, services.catalogue, READER, "booked", now=clock.now()) == 1
    assert state(engine) == ("stopped", ["cancelled"], True)  # newsletters go on
    # Idempotent: a second report finds nothing left to stop.
    assert goals.reached(engine, services.catalogue, READER, "booked", now=clock.now()) == 0
    with engine.connect() as conn:
        assert goal_ops.goals_after_step(conn, "booked") == {SLUG: {2: 1}}
        assert "subscriber_id" not in {c.name for c in goal_counts.columns}  # no person
    clock.advance(days=30)
    planning.plan(engine, services.catalogue, settings, now=clock.now())
    services.dispatcher.dispatch()
    assert state(engine)[0] == "stopped"


def test_unknown_address_changes_nothing(settings: Settings, engine: Engine) -> None:
    services, _ = reader_after_two_steps(settings, engine)
    assert goals.reached(engine, services.catalogue, "who@example.org", "booked", now=NOW) == 0
    assert state(engine) == ("active", ["queued"], True)


def test_the_cli_reports_a_booking(tmp_path: Path) -> None:
    assert run_cli(tmp_path, "db", "upgrade").returncode == 0
    result = run_cli(tmp_path, "subscribers", "booked", READER)
    assert result.returncode == 0, result.stderr
    assert "0 sequence(s) stopped" in result.stdout
    assert READER not in result.stdout  # masked


def test_api_key_new_prints_a_key_and_only_its_hash_for_settings(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "api-key", "new")
    assert result.returncode == 0
    key = result.stdout.split("once): ")[1].split()[0]
    assert f"API_KEYS entry (only this is stored):   {hash_key(key)}" in result.stdout


@pytest.fixture
def api(settings: Settings, engine: Engine) -> tuple[Services, FakeClock]:
    services, clock = reader_after_two_steps(
        settings.model_copy(update={"api_keys": [hash_key(KEY)]}), engine
    )
    return services, clock


def test_the_api_stops_the_sequence_and_answers_alike_for_strangers(
    api: tuple[Services, FakeClock], engine: Engine
) -> None:
    services, _ = api
    auth = {"Authorization": f"Bearer {KEY}"}
    with serve_app(create_app(services)) as url:
        stranger = httpx.post(
            f"{url}/api/events/booked", json={"email": "who@example.org"}, headers=auth
        )
        known = httpx.post(f"{url}/api/events/booked", json={"email": READER}, headers=auth)
        again = httpx.post(f"{url}/api/events/booked", json={"email": READER}, headers=auth)
    assert stranger.status_code == known.status_code == again.status_code == 202
    assert stranger.json() == known.json() == again.json() == {"status": "accepted"}
    assert state(engine) == ("stopped", ["cancelled"], True)


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer wrong-key", f"Basic {KEY}", f"Bearer {KEY}x", hash_key(KEY)],
)
def test_the_api_refuses_wrong_keys_and_changes_nothing(
    api: tuple[Services, FakeClock], engine: Engine, header: str
) -> None:
    services, _ = api
    with serve_app(create_app(services)) as url:
        answer = httpx.post(
            f"{url}/api/events/booked", json={"email": READER}, headers={"Authorization": header}
        )
    assert answer.status_code == 401
    assert state(engine) == ("active", ["queued"], True)


def test_the_api_says_what_it_expects_for_bad_bodies(api: tuple[Services, FakeClock]) -> None:
    services, _ = api
    auth = {"Authorization": f"Bearer {KEY}"}
    with serve_app(create_app(services)) as url:
        for body in (b"not json", b"[]", b'{"email": 3}', b'{"mail": "x@example.org"}'):
            answer = httpx.post(f"{url}/api/events/booked", content=body, headers=auth)
            assert answer.status_code == 400
            assert "email" in answer.json()["status"]


def test_api_keys_must_be_hashes(settings: Settings) -> None:
    from nurture.exceptions import ConfigurationError
    from nurture.settings import load_settings

    with pytest.raises(ConfigurationError, match="API_KEYS"):
        load_settings(var_dir=settings.var_dir, api_keys=KEY, _env_file=None)
