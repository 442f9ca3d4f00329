"""The studio's file side, without a server: writing files back as a person would, the
history, publishing through the check, the effect of a new order, and the reload."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nurture.campaigns import arrangement, history, load_catalogue, publishing
from nurture.campaigns.documents import YamlSyntaxError, split_front_matter
from nurture.campaigns.reload import CatalogueSource
from nurture.campaigns.writer import email_file, with_steps
from nurture.settings import Settings
from tests.helpers import ROOT

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
STEP = "what-i-actually-do/02-saying-it-out-loud.md"


@pytest.fixture
def files(settings: Settings, tmp_path: Path) -> Settings:
    """Settings over a private copy of the shipped campaigns."""
    shutil.copytree(ROOT / "campaigns", tmp_path / "campaigns")
    return settings.model_copy(update={"campaigns_dir": tmp_path / "campaigns"})


# -- writing -------------------------------------------------------------------------------


def test_unchanged_keys_keep_their_lines_and_comments() -> None:
    before = (
        '---\nsubject: Hello there   # short\npreheader: "A line"\ndelay: 0\ndraft: true\n'
        "---\nBody\n"
    )
    after = email_file(
        {"subject": "Hello there", "preheader": "Another: line", "delay": "0"}, "Body\r\nTwo"
    )
    assert after.startswith('---\nsubject: "Hello there"')  # a new file quotes every value
    edited = email_file(
        {"subject": "Hello there", "preheader": "Another: line", "delay": "0"},
        "Body\r\nTwo",
        previous=before,
    )
    assert edited == (
        "---\nsubject: Hello there   # short\n"
        'preheader: "Another: line"\ndelay: 0\ndraft: true\n---\nBody\nTwo\n'
    )
    assert split_front_matter(edited).front.data["preheader"] == "Another: line"


def test_a_subject_with_a_colon_is_quoted_and_the_yaml_error_says_how() -> None:
    text = email_file({"subject": 'Part two: "the" next step'}, "Hi\n")
    assert split_front_matter(text).front.data["subject"] == 'Part two: "the" next step'
    with pytest.raises(YamlSyntaxError, match="must be in quotes"):
        split_front_matter("---\nsubject: Part two: the next step\n---\nHi\n")


def test_with_steps_replaces_only_the_list() -> None:
    yaml_text = "name: X\nsteps:   # the order\n  - a\n  - b\n\n# kept\nhold: true\n"
    assert with_steps(yaml_text, ["b", "a", "c"]) == (
        "name: X\nsteps:\n  - b\n  - a\n  - c\n\n# kept\nhold: true\n"
    )
    assert with_steps("name: X\nsteps: [a, b]\n", ["b"]) == "name: X\nsteps:\n  - b\n"


# -- history and publishing -------------------------------------------------------------------


def test_a_clean_publish_keeps_the_previous_version(files: Settings) -> None:
    root = Path(files.campaigns_dir)
    path = root / STEP
    before = path.read_text()
    changed = before.replace("Saying it out loud for the first time", "Said out loud")
    publishing.publish(
        files, [publishing.Change(path, changed, publishing.digest(before))], now=NOW
    )
    assert path.read_text() == changed
    [kept] = history.versions(root, path)
    assert kept.text() == before and kept.saved_at == NOW
    assert history.version(root, path, kept.id).text() == before
    assert not list(path.parent.glob(".*.tmp"))


def test_an_unknown_variable_is_refused_and_nothing_changes(files: Settings) -> None:
    path = Path(files.campaigns_dir) / STEP
    before = path.read_text()
    with pytest.raises(publishing.Rejected) as refused:
        publishing.publish(files, [publishing.Change(path, before + "{{ frist_name }}\n")], now=NOW)
    assert any("unknown variable 'frist_name'" in p.message for p in refused.value.review.blocking)
    assert refused.value.review.blocking[0].path == str(path)
    assert path.read_text() == before
    assert history.versions(Path(files.campaigns_dir), path) == []


def test_a_file_changed_since_it_was_opened_is_a_conflict(files: Settings) -> None:
    path = Path(files.campaigns_dir) / STEP
    with pytest.raises(publishing.Conflict):
        publishing.publish(files, [publishing.Change(path, "x", publishing.digest("old"))], now=NOW)


def test_removing_a_listed_step_without_the_list_is_refused(files: Settings) -> None:
    path = Path(files.campaigns_dir) / STEP
    result = publishing.review(files, [publishing.Change(path, None)])
    assert not result.ok
    assert "does not exist" in result.blocking[0].message


# -- the effect of a new order ----------------------------------------------------------------


def test_effects_of_inserting_before_and_after_readers() -> None:
    old = ["a", "b", "c"]
    new = ["a", "x", "b", "c", "y"]
    found = arrangement.effects(old, new, {2: 5, 0: 1}, {})
    by_had = {e.had: e for e in found}
    # Two emails in: "x" now sits before them, so they skip it; "y" comes at the end.
    assert by_had[2].missed == ("x",) and by_had[2].upcoming == ("c", "y")
    assert by_had[0].upcoming == ("a", "x", "b", "c", "y") and by_had[0].missed == ()


def test_effects_of_a_removal_and_a_queued_email() -> None:
    old = ["a", "b", "c", "d"]
    # One reader at position 1 has "b" queued; three more at position 1 wait to be planned.
    found = arrangement.effects(old, ["a", "c", "d"], {1: 4}, {"b": 1})
    queued = next(e for e in found if e.cancelled)
    waiting = next(e for e in found if not e.cancelled)
    assert (queued.readers, queued.upcoming) == (1, ("c", "d"))
    assert (waiting.readers, waiting.upcoming) == (3, ("c", "d"))
    moved = arrangement.effects(old, ["b", "a", "c", "d"], {1: 2}, {"b": 2})
    assert moved == []  # "b" still goes out next, then "c": nothing changes for them


# -- reloading ---------------------------------------------------------------------------------


def test_the_source_reloads_good_edits_and_keeps_the_last_good_one(files: Settings) -> None:
    source = CatalogueSource(files, load_catalogue(files), clock=lambda: NOW)
    assert source.refresh() is None  # nothing changed
    path = Path(files.campaigns_dir) / STEP
    text = path.read_text()
    path.write_text(text.replace("Saying it out loud for the first time", "Edited on disk"))
    fresh = source.refresh()
    assert fresh is not None
    assert fresh.campaign("what-i-actually-do").step("02-saying-it-out-loud").subject == (
        "Edited on disk"
    )
    path.write_text(text.replace("{{ first_name }}", "{{ frist_name }}"))
    assert source.refresh() is None
    state = source.state
    assert state.catalogue is fresh and state.broken_since == NOW
    assert any("frist_name" in p.message for p in state.errors)
    path.write_text(text)
    assert source.refresh() is not None
    assert source.state.broken_since is None


def test_removing_a_step_before_readers_makes_them_miss_nothing() -> None:
    from nurture.campaigns.arrangement import effects

    old, new = ["a", "b", "c", "d"], ["b", "c", "d"]
    # Two readers had a and b; nothing queued. Their place is b, by name: c comes next.
    found = effects(old, new, {2: 2}, {})
    assert all(e.missed == () for e in found)
    assert all(e.upcoming == ("c", "d") for e in found)
