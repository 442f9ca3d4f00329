"""Snippets (issue 14, item 6): ``campaigns/snippets/NAME.md`` used as ``{{ snippet.NAME }}``.

They load with the catalogue, render in the body's sandbox with the body's variables
(never another snippet), and ``nurture check`` reports unknown ones with file and line.
"""

from __future__ import annotations

import shutil
from html import unescape
from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError

from nurture.campaigns import load_catalogue
from nurture.campaigns.check import check, exit_status
from nurture.campaigns.snippets import Snippet, names_used
from nurture.exceptions import RenderError
from nurture.rendering import Renderer
from nurture.rendering.compiler import render_body
from nurture.settings import Settings

OFFER = "a twenty-minute call"


@pytest.fixture
def copy(settings: Settings, tmp_path: Path) -> tuple[Settings, Path]:
    """Settings pointing at a private copy of the shipped campaigns."""
    root = tmp_path / "campaigns"
    shutil.copytree(settings.campaigns_dir, root)
    return settings.model_copy(update={"campaigns_dir": root}), root


def _errors(settings: Settings) -> list[str]:
    return [str(p) for p in check(settings) if p.is_error]


def _line_of(path: Path, fragment: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if fragment in line)


def _flat(text: str) -> str:
    return " ".join(unescape(text).split())


def _snippets(**bodies: str) -> dict[str, Snippet]:
    return {name: Snippet(name, body, Path(f"snippets/{name}.md")) for name, body in bodies.items()}


# -- the shipped copy -----------------------------------------------------------------------


def test_the_consultation_and_reply_paragraphs_are_shared(settings: Settings) -> None:
    catalogue = load_catalogue(settings)
    assert set(catalogue.snippets) >= {"consultation", "reply"}
    assert "{{ reply_policy }}" in catalogue.snippets["reply"].body
    assert "{{ consultation_offer }}" in catalogue.snippets["consultation"].body
    steps = [s.body for c in catalogue.campaigns.values() for s in c.steps]
    bodies = steps + [n.body for n in catalogue.newsletters.values()]
    assert sum("{{ snippet.consultation }}" in body for body in steps) >= 3
    assert sum("{{ snippet.reply }}" in body for body in bodies) >= 5
    # The sequences no longer word the booking paragraph themselves (the newsletter's
    # seasonal invitation stays its own), and no email places the policy by hand.
    assert not any("[book {{ consultation_offer }}]" in body for body in steps)
    assert not any("{{ reply_policy }}" in body for body in bodies)


def test_a_step_renders_its_snippets_with_the_settings(settings: Settings) -> None:
    offered = settings.model_copy(update={"consultation_offer": OFFER})
    content = Renderer(offered, load_catalogue(offered)).compile(
        "what-i-actually-do", "05-when-life-gets-loud"
    )
    assert f"book {OFFER}" in _flat(content.text)
    assert f">book {OFFER}</a>" in content.html
    assert "snippet" not in content.text and "{{" not in content.text


def test_where_each_snippet_is_used(settings: Settings) -> None:
    catalogue = load_catalogue(settings)
    used = {
        (campaign.slug, step.slug): names_used(step.body)
        for campaign in catalogue.campaigns.values()
        for step in campaign.steps
    }
    assert used[("what-i-actually-do", "10-an-open-door")] == {"consultation", "reply"}
    assert used[("beginning-therapy", "02-the-whole-picture")] == set()
    assert names_used("{{ snippet['reply'] }} {{ snippet }} {% if %}") == set()
    assert names_used("{{ snippet['reply'] }} {{ snippet }}") == {"reply"}


# -- rendering ----------------------------------------------------------------------------------


def test_a_snippet_sees_the_body_variables(settings: Settings) -> None:
    shared = _snippets(
        sign="Thanks, {{ first_name }}. [Book]({{ links.booking }}) {{ consultation_offer }}."
    )
    body = render_body(
        settings, "Hello.\n\n{{ snippet.sign }}\n", "https://a.example", shared=shared
    )
    assert "Thanks, %%first_name%%." in body.text
    assert f'href="{settings.booking_url}"' in body.html
    assert settings.consultation_offer in body.text


def test_a_snippet_can_sit_inside_a_sentence(settings: Settings) -> None:
    shared = _snippets(policy="\n{{ reply_policy }}\n\n")
    body = render_body(settings, "Write back. {{ snippet.policy }} Bye.\n", "", shared=shared)
    assert _flat(body.text) == f"Write back. {settings.reply_policy} Bye."


def test_an_unknown_snippet_does_not_render(settings: Settings) -> None:
    with pytest.raises(RenderError, match="unknown snippet 'nope'"):
        render_body(settings, "{{ snippet.nope }}", "", shared=_snippets(sign="x"))


def test_a_snippet_may_not_use_another(settings: Settings) -> None:
    shared = _snippets(outer="A {{ snippet.inner }}", inner="B")
    with pytest.raises(RenderError, match="snippet 'outer'"):
        render_body(settings, "{{ snippet.outer }}", "", shared=shared)


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("{{ snippet }}", RenderError),
        ("{{ snippet._snippets }}", SecurityError),
        ("{{ snippet.__class__ }}", SecurityError),
    ],
)
def test_the_sandbox_holds(settings: Settings, source: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        render_body(settings, source, "", shared=_snippets(sign="x"))


# -- check ------------------------------------------------------------------------------------


def test_check_reports_an_unknown_snippet_with_file_and_line(copy: tuple[Settings, Path]) -> None:
    settings, root = copy
    step = root / "beginning-therapy" / "03-trust-takes-time.md"
    step.write_text(
        step.read_text().replace("{{ snippet.consultation }}", "{{ snippet.consultaton }}")
    )
    problems = check(settings)
    assert exit_status(problems) == 1
    assert _errors(settings) == [
        f"{step}:{_line_of(step, 'consultaton')}: unknown snippet 'consultaton' "
        "(snippets: consultation, reply; each is a file snippets/NAME.md in the campaigns folder)"
    ]


def test_check_refuses_snippets_inside_snippets_and_bad_names(copy: tuple[Settings, Path]) -> None:
    settings, root = copy
    folder = root / "snippets"
    (folder / "sign-off.md").write_text("Warmly\n")
    (folder / "outer.md").write_text("Some words.\n\n{{ snippet.reply }}\n")
    (folder / "bare.md").write_text("Fine.\n")
    step = root / "beginning-therapy" / "02-the-whole-picture.md"
    step.write_text(step.read_text().replace("Warmly,", "{{ snippet }}\n\nWarmly,"))
    errors = _errors(settings)
    assert f"{folder / 'outer.md'}:3: a snippet may not use other snippets" in errors
    assert any(e.startswith(f"{folder / 'sign-off.md'}:1: snippet name 'sign-off'") for e in errors)
    line = _line_of(step, "{{ snippet }}")
    assert f"{step}:{line}: write {{{{ snippet.NAME }}}}, naming one snippet" in errors
    assert len(errors) == 3


def test_check_looks_inside_each_snippet(copy: tuple[Settings, Path]) -> None:
    settings, root = copy
    snippet = root / "snippets" / "consultation.md"
    snippet.write_text("First line.\n\n[Book](http://insecure.example.com) {{ booking }}\n")
    errors = _errors(settings)
    assert any(e.startswith(f"{snippet}:3: unknown variable 'booking'") for e in errors), errors
    snippet.write_text("First line.\n\n[Book](http://insecure.example.com)\n")
    assert _errors(settings) == [
        f"{snippet}:3: link 'Book': 'http://insecure.example.com' is not secure: use https://"
    ]
    snippet.write_text("> NOTE: rewrite me\n")
    assert [e.split(": ", 1)[0] for e in _errors(settings)] == [f"{snippet}:1"]


def test_the_reply_policy_may_be_placed_by_a_snippet(copy: tuple[Settings, Path]) -> None:
    settings, root = copy
    assert [p for p in check(settings) if not p.is_error] == []
    reply = root / "snippets" / "reply.md"
    reply.write_text("Thank you for writing.\n")  # no policy any more
    warned = [str(p) for p in check(settings) if not p.is_error]
    assert len(warned) >= 5
    assert all("put {{ reply_policy }} near the invitation" in w for w in warned)
    # A snippet that invites replies is held to the same rule, at its own line.
    reply.write_text("{{ reply_policy }}\n\nOr just reply.\n")
    warned = [str(p) for p in check(settings) if not p.is_error]
    assert warned == []
    (root / "snippets" / "invite.md").write_text("Hello.\nDo reply.\n")
    warned = [str(p) for p in check(settings) if not p.is_error]
    assert warned == [
        f"{root / 'snippets' / 'invite.md'}:2: warning: this email invites replies: "
        "put {{ reply_policy }} near the invitation"
    ]


def test_a_changed_snippet_is_used_once_the_catalogue_is_reloaded(
    copy: tuple[Settings, Path],
) -> None:
    settings, root = copy
    before = Renderer(settings, load_catalogue(settings))
    key = ("what-i-actually-do", "05-when-life-gets-loud")
    assert "whenever the timing suits you" in _flat(before.compile(*key).text)

    snippet = root / "snippets" / "consultation.md"
    snippet.write_text(
        "When you feel ready, [book {{ consultation_offer }}]({{ links.booking }}).\n"
    )

    # A renderer compiles each step once: the old catalogue keeps the old text...
    assert "whenever the timing suits you" in _flat(before.compile(*key).text)
    # ...and the reloaded catalogue carries the new one, in every email using it.
    catalogue = load_catalogue(settings)
    after = Renderer(settings, catalogue)
    for campaign, step in [key, ("beginning-therapy", "03-trust-takes-time")]:
        text = _flat(after.compile(campaign, step).text)
        assert f"When you feel ready, book {settings.consultation_offer}" in text
        assert "whenever the timing suits you" not in text
