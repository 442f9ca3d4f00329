"""The studio over real HTTP: login, CSRF, lockout, saving, history, arranging steps,
newsletters, test sends, and edits reaching the running service without a restart."""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from nurture.campaigns import history
from nurture.runtime import jobs, reload
from nurture.runtime.services import Services
from nurture.settings import Settings
from nurture.web.studio.auth import hash_password
from tests.helpers import ROOT, production_settings
from tests.integration.support import serve, token

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
CAMPAIGN = "what-i-actually-do"
STEP = "02-saying-it-out-loud"
EDITOR = f"/studio/campaigns/{CAMPAIGN}/{STEP}"
PASSWORD = "a long studio password"


@pytest.fixture
def studio_settings(settings: Settings, tmp_path: Path) -> Settings:
    """Test settings over a private copy of the campaigns, served over plain http."""
    shutil.copytree(ROOT / "campaigns", tmp_path / "campaigns")
    return settings.model_copy(
        update={"campaigns_dir": tmp_path / "campaigns", "base_url": "http://127.0.0.1:8000"}
    )


@pytest.fixture
def open_studio(
    studio_settings: Settings, sqlite_engine: Engine
) -> Iterator[tuple[Services, httpx.Client]]:
    """Development without a password: open to loopback, after one button."""
    for served in serve(studio_settings, sqlite_engine):
        _, client = served
        page = client.get("/studio/login")
        client.post("/studio/login", data={"csrf_token": token(page.text)})
        yield served


@pytest.fixture
def locked_studio(
    studio_settings: Settings, sqlite_engine: Engine
) -> Iterator[tuple[Services, httpx.Client]]:
    settings = studio_settings.model_copy(
        update={"studio_password_hash": SecretStr(hash_password(PASSWORD))}
    )
    yield from serve(settings, sqlite_engine)


def editor_fields(client: httpx.Client, path: str = EDITOR) -> dict[str, str]:
    page = client.get(path)
    assert page.status_code == 200
    body = re.search(r"<textarea[^>]*>(.*?)</textarea>", page.text, re.S)
    assert body
    fields = {name: token(page.text, name) for name in ("csrf_token", "base", "subject")}
    fields.update(preheader=token(page.text, "preheader"), body=html.unescape(body.group(1)))
    if 'name="delay"' in page.text:
        fields["delay"] = token(page.text, "delay")
    return fields


def step_file(services: Services) -> Path:
    return Path(services.settings.campaigns_dir) / CAMPAIGN / f"{STEP}.md"


def subject_in_service(services: Services) -> str:
    return services.catalogue.campaign(CAMPAIGN).step(STEP).subject


# -- the door -----------------------------------------------------------------------------------


def test_login_sets_a_strict_httponly_session_and_logout_ends_it(
    locked_studio: tuple[Services, httpx.Client],
) -> None:
    _, client = locked_studio
    assert client.get("/studio/campaigns").status_code == 303
    page = client.get("/studio/login")
    wrong = client.post(
        "/studio/login",
        data={"csrf_token": token(page.text), "username": "therapist", "password": "nope"},
    )
    assert wrong.status_code == 401
    right = client.post(
        "/studio/login",
        data={"csrf_token": token(wrong.text), "username": "therapist", "password": PASSWORD},
    )
    assert right.status_code == 303
    cookie = right.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/studio" in cookie
    assert "secure" not in cookie  # BASE_URL is http here
    assert client.get("/studio/campaigns").status_code == 200
    out = client.post("/studio/logout", data={"csrf_token": token(client.get(EDITOR).text)})
    assert out.status_code == 303
    assert client.get("/studio/campaigns").status_code == 303


def test_a_login_without_its_csrf_token_is_refused(
    locked_studio: tuple[Services, httpx.Client],
) -> None:
    _, client = locked_studio
    client.get("/studio/login")
    refused = client.post("/studio/login", data={"username": "therapist", "password": PASSWORD})
    assert refused.status_code == 403
    assert "nurture_studio=" not in refused.headers.get("set-cookie", "")


def test_repeated_failures_lock_the_login(locked_studio: tuple[Services, httpx.Client]) -> None:
    _, client = locked_studio
    page = client.get("/studio/login")
    statuses = []
    for _ in range(11):
        answer = client.post(
            "/studio/login",
            data={"csrf_token": token(page.text), "username": "therapist", "password": "guess"},
        )
        statuses.append(answer.status_code)
        page = answer
    assert statuses[:9] == [401] * 9 and statuses[-1] == 429
    assert int(answer.headers["retry-after"]) > 0
    # Locked: even the right password is not checked now.
    right = client.post(
        "/studio/login",
        data={"csrf_token": token(page.text), "username": "therapist", "password": PASSWORD},
    )
    assert right.status_code == 429


def test_the_session_cookie_is_secure_under_https(
    studio_settings: Settings, sqlite_engine: Engine
) -> None:
    settings = studio_settings.model_copy(
        update={
            "base_url": "https://practice.test",
            "studio_password_hash": SecretStr(hash_password(PASSWORD)),
        }
    )
    for _, client in serve(settings, sqlite_engine):
        page = client.get("/studio/login")
        assert "secure" in page.headers["set-cookie"].lower()
        # The client talks plain http to the test server: hand the Secure cookie back.
        form_cookie = page.headers["set-cookie"].split(";", 1)[0]
        answer = client.post(
            "/studio/login",
            data={"csrf_token": token(page.text), "username": "therapist", "password": PASSWORD},
            headers={"Cookie": form_cookie},
        )
        assert answer.status_code == 303
        assert "secure" in answer.headers["set-cookie"].lower()


def test_closed_in_production_without_a_hash(tmp_path: Path, sqlite_engine: Engine) -> None:
    settings = production_settings(tmp_path)
    for _, client in serve(settings, sqlite_engine):
        for path in ("/studio/login", "/studio/campaigns", EDITOR, "/studio/static/studio.css"):
            assert client.get(path).status_code == 404, path


def test_open_only_to_loopback_in_development(open_studio: tuple[Services, httpx.Client]) -> None:
    _, client = open_studio
    assert client.get("/studio/campaigns").status_code == 200
    proxied = client.get("/studio/campaigns", headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status_code == 404


# -- saving -------------------------------------------------------------------------------------


def test_a_post_without_csrf_is_403_and_changes_nothing(
    open_studio: tuple[Services, httpx.Client],
) -> None:
    services, client = open_studio
    before = step_file(services).read_text()
    fields = editor_fields(client)
    for bad in ("", "forged-token"):
        answer = client.post(EDITOR, data={**fields, "csrf_token": bad, "subject": "Changed"})
        assert answer.status_code == 403
    assert step_file(services).read_text() == before


def test_an_unknown_variable_is_422_and_the_file_stays(
    open_studio: tuple[Services, httpx.Client],
) -> None:
    services, client = open_studio
    before = step_file(services).read_text()
    fields = editor_fields(client)
    answer = client.post(EDITOR, data={**fields, "body": fields["body"] + "\n{{ frist_name }}\n"})
    assert answer.status_code == 422
    assert "unknown variable" in answer.text and "frist_name" in answer.text
    assert "{{ frist_name }}" in html.unescape(answer.text)  # her text is kept in the form
    assert step_file(services).read_text() == before


def test_a_save_is_live_at_once_and_history_restores_it(
    open_studio: tuple[Services, httpx.Client],
) -> None:
    services, client = open_studio
    path = step_file(services)
    before = path.read_text()
    fields = editor_fields(client)
    saved = client.post(EDITOR, data={**fields, "subject": "Said out loud: at last"})
    assert saved.status_code == 303
    assert 'subject: "Said out loud: at last"' in path.read_text()
    assert 'delay: "2 days"' in path.read_text()  # unchanged keys keep their lines
    assert subject_in_service(services) == "Said out loud: at last"
    listing = client.get(EDITOR + "/history")
    [version] = history.versions(Path(services.settings.campaigns_dir), path)
    assert version.id in listing.text
    shown = client.get(f"{EDITOR}/history/{version.id}")
    assert shown.status_code == 200 and "Saying it out loud for the first time" in shown.text
    restored = client.post(
        f"{EDITOR}/history/{version.id}",
        data={"csrf_token": token(shown.text), "base": token(shown.text, "base")},
    )
    assert restored.status_code == 303
    assert path.read_text() == before
    assert subject_in_service(services) == "Saying it out loud for the first time"
    assert len(history.versions(Path(services.settings.campaigns_dir), path)) == 2


def test_the_live_preview_answers_problems_by_field_and_line(
    open_studio: tuple[Services, httpx.Client],
) -> None:
    _, client = open_studio
    fields = editor_fields(client)
    answer = client.post(
        EDITOR + "/preview",
        data={**fields, "subject": "About your sex life", "body": "Hi\n\n{{ nope }}\n"},
    )
    data = answer.json()
    assert data["subject"] == "About your sex life" and data["from_name"]
    by_field = {p["field"]: p for p in data["problems"]}
    assert "lock screen" in by_field["subject"]["message"]
    assert by_field[None]["body_line"] == 3
    assert data["blocking"] >= 2


# -- steps, newsletters, test sends -------------------------------------------------------------


def test_reordering_states_the_effect_then_saves(
    open_studio: tuple[Services, httpx.Client],
) -> None:
    services, client = open_studio
    order = [s.slug for s in services.catalogue.campaign(CAMPAIGN).steps]
    order[0], order[1] = order[1], order[0]
    arrange = client.get(f"/studio/campaigns/{CAMPAIGN}/steps")
    review = client.post(
        f"/studio/campaigns/{CAMPAIGN}/steps/review",
        data={"csrf_token": token(arrange.text), "order": ",".join(order)},
    )
    assert review.status_code == 200 and "Nobody is in this sequence" in review.text
    done = client.post(
        f"/studio/campaigns/{CAMPAIGN}/steps",
        data={
            "csrf_token": token(review.text),
            "order": ",".join(order),
            "base": token(review.text, "base"),
        },
    )
    assert done.status_code == 303
    assert [s.slug for s in services.catalogue.campaign(CAMPAIGN).steps] == order


def test_a_newsletter_is_scheduled_then_cancelled(
    open_studio: tuple[Services, httpx.Client],
) -> None:
    services, client = open_studio
    page = client.get("/studio/newsletters/new")
    assert page.status_code == 200
    data = {
        "csrf_token": token(page.text),
        "name": "2026-04-01-spring",
        "subject": "A short spring note",
        "preheader": "Three things worth knowing this month",
        "send_at": "2026-04-01 09:00",
        "not_after": "",
        "body": "Hello {{ first_name }},\n\nA note.\n\n{{ therapist_name }}\n",
    }
    saved = client.post("/studio/newsletters/new", data=data)
    assert saved.status_code == 303
    letter = services.catalogue.newsletter("2026-04-01-spring")
    assert letter.send_at == datetime(2026, 4, 1, 8, 0, tzinfo=UTC)  # 09:00 in London (BST)
    cancel = client.get("/studio/newsletters/2026-04-01-spring/cancel")
    done = client.post(
        "/studio/newsletters/2026-04-01-spring/cancel",
        data={"csrf_token": token(cancel.text), "base": token(cancel.text, "base")},
    )
    assert done.status_code == 303
    assert "2026-04-01-spring" not in services.catalogue.newsletters


def test_a_test_send_names_the_address_and_its_links_change_nothing(
    open_studio: tuple[Services, httpx.Client],
) -> None:
    services, client = open_studio
    page = client.get(EDITOR)
    answer = client.post(
        EDITOR + "/test", data={"csrf_token": token(page.text), "to": "me@example.org"}
    )
    assert answer.status_code == 200 and "me@example.org" in answer.text
    provider: Any = services.provider
    [batch] = provider.batches
    assert batch.subject.startswith("[TEST] ")
    values = batch.recipients[0].values
    unsubscribe = "/unsubscribe/" + values["unsubscribe_url"].rsplit("/", 1)[1]
    preferences = "/preferences/" + values["preferences_url"].rsplit("/", 1)[1]
    assert "test email" in client.get(unsubscribe).text
    pressed = client.post(unsubscribe, data={"confirm": "yes"})
    assert pressed.status_code == 200 and "changes anything" in pressed.text
    assert client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    prefs = client.get(preferences)
    assert prefs.status_code == 200 and "test email" in prefs.text
    changed = client.post(preferences, data={"action": "stop_all"})
    assert changed.status_code == 200 and "nothing was changed" in changed.text


# -- live without a restart ---------------------------------------------------------------------


def test_an_edit_on_disk_reaches_the_running_service_within_a_tick(
    open_studio: tuple[Services, httpx.Client],
) -> None:
    services, client = open_studio
    path = step_file(services)
    text = path.read_text()
    path.write_text(
        text.replace("Saying it out loud for the first time", "Edited in a text editor")
    )
    jobs.plan(services)  # the scheduler's next pass
    assert subject_in_service(services) == "Edited in a text editor"
    compiled = services.dispatcher.composer.renderer.compile(CAMPAIGN, STEP)
    assert compiled.subject == "Edited in a text editor"

    path.write_text(text.replace("{{ first_name }}", "{{ frist_name }}"))
    jobs.dispatch(services)
    assert subject_in_service(services) == "Edited in a text editor"  # the last good one
    health = client.get("/healthz").json()
    assert health["campaigns"]["status"] == "problems"
    assert any("frist_name" in p for p in health["campaigns"]["problems"])
    assert "The campaign files have errors" in client.get("/studio/campaigns").text


def test_the_watcher_reloads_the_web_half(open_studio: tuple[Services, httpx.Client]) -> None:
    services, _ = open_studio
    path = step_file(services)
    path.write_text(path.read_text().replace("Saying it out loud for the first time", "Watched"))
    watcher = reload.Watcher(services, every=0.05).start()
    try:
        import time

        deadline = time.monotonic() + 10
        while subject_in_service(services) != "Watched":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        watcher.stop()


def test_a_draft_is_published_from_its_page_only_once_its_notes_are_gone(
    open_studio: tuple[Services, httpx.Client],
) -> None:
    services, client = open_studio
    path = step_file(services)
    path.write_text(path.read_text().replace("---\n", "---\ndraft: true\n", 1))
    client.post(  # the service reloads the files it finds changed
        EDITOR, data={**editor_fields(client)}
    )
    assert STEP in {s.slug for s in services.catalogue.campaign(CAMPAIGN).drafts}
    page = client.get(EDITOR)
    assert "Save and publish" in page.text
    fields = editor_fields(client)
    noted = client.post(
        EDITOR, data={**fields, "publish": "yes", "body": fields["body"] + "\n> NOTE: rewrite\n"}
    )
    assert noted.status_code == 422  # the check refuses to publish a step holding notes
    assert "draft: true" in path.read_text()
    published = client.post(EDITOR, data={**editor_fields(client), "publish": "yes"})
    assert published.status_code == 303
    assert "draft" not in path.read_text()
    assert STEP in {s.slug for s in services.catalogue.campaign(CAMPAIGN).steps}
