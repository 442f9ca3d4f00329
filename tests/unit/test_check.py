"""``nurture check``: each problem as ``path:line: message``, errors failing the exit status."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nurture.campaigns.check import Problem, check, exit_status
from nurture.campaigns.discretion import find_exposures
from nurture.settings import Settings


@pytest.fixture
def copy(settings: Settings, tmp_path: Path) -> tuple[Settings, Path]:
    """Settings pointing at private copies of the shipped campaigns and templates."""
    root = tmp_path / "campaigns"
    shutil.copytree(settings.campaigns_dir, root)
    templates = tmp_path / "templates"
    shutil.copytree(settings.templates_dir, templates)
    return settings.model_copy(update={"campaigns_dir": root, "templates_dir": templates}), root


def _lines(problems: list[Problem]) -> list[str]:
    return [str(p) for p in problems]


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def _line_of(path: Path, fragment: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if fragment in line)


def test_shipped_campaigns_pass(settings: Settings) -> None:
    problems = check(settings)
    assert [str(p) for p in problems if p.is_error] == []
    assert exit_status(problems) == 0


def test_acceptance_broken_front_matter_unknown_variable_and_bad_subject(
    copy: tuple[Settings, Path],
) -> None:
    settings, root = copy
    folder = root / "what-i-actually-do"
    broken = folder / "02-saying-it-out-loud.md"
    _replace(broken, "preheader: ", "preheader: Broken: ")  # a second ': ' breaks YAML
    unknown = folder / "03-how-wanting-works.md"
    _replace(unknown, "Warmly,", "See you soon, {{ frist_name }}.\n\nWarmly,")
    explicit = folder / "04-the-stories-we-carry.md"
    subject = "Everything you wanted to know about sexual desire but were too shy to ask"
    _replace(explicit, 'subject: "The stories we grew up with"', f'subject: "{subject}"')

    problems = check(settings)
    lines = _lines(problems)

    assert any(
        line.startswith(f"{broken}:3: YAML syntax error: mapping values are not allowed here")
        and "must be in quotes" in line
        for line in lines
    )
    variable_line = _line_of(unknown, "frist_name")
    assert any(
        line.startswith(f"{unknown}:{variable_line}: unknown variable 'frist_name'")
        for line in lines
    ), lines
    assert f"{explicit}:2: subject is {len(subject)} characters; keep it to 70 or fewer" in lines
    assert any(line.startswith(f"{explicit}:2: subject contains 'sexual'") for line in lines), lines
    assert any(line.startswith(f"{explicit}:2: subject contains 'desire'") for line in lines)
    assert all(p.severity == "error" for p in problems)
    assert exit_status(problems) == 1


def test_unknown_keys_missing_subject_and_bad_delay(copy: tuple[Settings, Path]) -> None:
    settings, root = copy
    path = root / "beginning-therapy" / "02-the-whole-picture.md"
    _replace(path, 'subject: "Looking at the whole picture"\n', "")
    _replace(path, 'delay: "2 days"', 'delay: "2 fortnights"\ncolour: blue')
    yaml_path = root / "beginning-therapy" / "campaign.yaml"
    _replace(yaml_path, "from_name:", "form_name: typo\nfrom_name:")
    lines = _lines(check(settings))
    assert f"{path}:2: missing subject" in lines  # the first line of the front matter
    assert any(line.startswith(f"{path}:3: bad delay '2 fortnights'") for line in lines)
    assert any(line.startswith(f"{path}:4: unknown key 'colour'") for line in lines)
    form_line = _line_of(yaml_path, "form_name")
    assert any(
        line.startswith(f"{yaml_path}:{form_line}: unknown key 'form_name'") for line in lines
    )


def test_steps_listed_versus_files_present(copy: tuple[Settings, Path]) -> None:
    settings, root = copy
    folder = root / "beginning-therapy"
    (folder / "04-small-steps-and-setbacks.md").rename(folder / "04-renamed.md")
    lines = _lines(check(settings))
    listed_at = _line_of(folder / "campaign.yaml", "- 04-small-steps-and-setbacks")
    assert (
        f"{folder / 'campaign.yaml'}:{listed_at}: step '04-small-steps-and-setbacks' is listed "
        "but 04-small-steps-and-setbacks.md does not exist"
    ) in lines
    assert f"{folder / '04-renamed.md'}:1: 04-renamed.md is not listed in campaign.yaml steps" in (
        lines
    )


def test_links_images_and_jinja_errors(copy: tuple[Settings, Path]) -> None:
    settings, root = copy
    path = root / "what-i-actually-do" / "05-when-life-gets-loud.md"
    additions = [
        "[an old page](http://www.example.org/page)",
        "[nowhere]()",
        "![](https://www.example-practice.com/picture.png)",
        "[relative](/contact)",
        "[spaced]( https://www.example.org/a b )",
        "[mail me](mailto:hello@example-practice.com) and [book]({{ links.booking }})",
    ]
    _replace(path, "Warmly,", "\n\n".join(additions) + "\n\nWarmly,")
    problems = check(settings)
    found = {p.line: p.message for p in problems if p.path == str(path)}
    line = _line_of(path, "an old page")
    assert "is not secure: use https://" in found[line]
    assert "empty link target" in found[_line_of(path, "[nowhere]")]
    assert "has no alt text" in found[_line_of(path, "picture.png")]
    assert "is not an https:// URL" in found[_line_of(path, "[relative]")]
    assert "looks like a link but is not one" in found[_line_of(path, "[spaced]")]
    assert _line_of(path, "mail me") not in found


def test_jinja_syntax_error_has_its_line(copy: tuple[Settings, Path]) -> None:
    settings, root = copy
    path = root / "what-i-actually-do" / "05-when-life-gets-loud.md"
    _replace(path, "Warmly,", "{% if %}\n\nWarmly,")
    problems = [p for p in check(settings) if p.path == str(path)]
    assert [p.line for p in problems] == [_line_of(path, "{% if %}")]
    assert problems[0].message.startswith("template syntax error")


def test_unknown_link_variable(copy: tuple[Settings, Path]) -> None:
    settings, root = copy
    path = root / "what-i-actually-do" / "05-when-life-gets-loud.md"
    _replace(path, "Warmly,", "[Calendar]({{ links.calendar }})\n\nWarmly,")
    lines = _lines(check(settings))
    at = _line_of(path, "links.calendar")
    assert any(line.startswith(f"{path}:{at}: unknown variable 'links.calendar'") for line in lines)


def test_runtime_render_error_has_its_line(copy: tuple[Settings, Path]) -> None:
    settings, root = copy
    path = root / "what-i-actually-do" / "05-when-life-gets-loud.md"
    _replace(path, "Warmly,", "{{ links.article.nope }}\n\nWarmly,")
    problems = [p for p in check(settings) if p.path == str(path)]
    assert [p.line for p in problems] == [_line_of(path, "links.article.nope")]
    assert "does not render" in problems[0].message


def test_first_name_through_a_filter(copy: tuple[Settings, Path]) -> None:
    settings, root = copy
    path = root / "what-i-actually-do" / "05-when-life-gets-loud.md"
    _replace(path, "{{ first_name }}", "{{ first_name|upper }}")
    at = _line_of(path, "first_name|upper")  # the body's first line, where it is reported
    message = "first_name cannot go through a filter; write {{ first_name }}"
    assert _lines(check(settings)) == [f"{path}:{at}: {message}"]


def test_preheader_warnings_alone_exit_zero(copy: tuple[Settings, Path]) -> None:
    settings, root = copy
    path = root / "beginning-therapy" / "03-trust-takes-time.md"
    text = path.read_text().splitlines(keepends=True)
    assert text[2].startswith("preheader:")
    path.write_text("".join(text[:2] + text[3:]))
    other = root / "beginning-therapy" / "01-the-first-step.md"
    long = "A calm note " * 14
    lines = other.read_text().splitlines(keepends=True)
    lines[2] = f'preheader: "{long}"\n'
    other.write_text("".join(lines))
    problems = check(settings)
    assert [p.severity for p in problems] == ["warning", "warning"]
    assert str(problems[0]).startswith(f"{other}:3: warning: preheader is {len(long.strip())}")
    assert str(problems[1]).startswith(f"{path}:1: warning: missing preheader")
    assert exit_status(problems) == 0


def test_discretion_on_from_name_and_campaign_words(copy: tuple[Settings, Path]) -> None:
    settings, root = copy
    yaml_path = root / "what-i-actually-do" / "campaign.yaml"
    _replace(yaml_path, "from_name: Alex Morgan", "from_name: Alex Morgan Sex Therapy")
    _replace(yaml_path, "steps:", "discretion_words: [wanting]\nsteps:")
    lines = _lines(check(settings))
    at = _line_of(yaml_path, "from_name")
    assert any(line.startswith(f"{yaml_path}:{at}: From name contains 'Sex'") for line in lines)
    assert any(line.startswith(f"{yaml_path}:{at}: From name contains 'Therapy'") for line in lines)
    wanting = root / "what-i-actually-do" / "03-how-wanting-works.md"
    assert any(line.startswith(f"{wanting}:2: subject contains 'wanting'") for line in lines)
    # Only that campaign's emails get its extra words.
    assert not any("beginning-therapy" in line and "'wanting'" in line for line in lines)


def test_discretion_matching() -> None:
    words = ["sex*", "therap*", "sti"]
    assert [e.found for e in find_exposures("Sexual health and THERAPISTS", words)] == [
        "Sexual",
        "THERAPISTS",
    ]
    assert find_exposures("A walk in Sussex", words) == []
    # Whole-word entries catch the word and its plural, never a longer word.
    assert [e.found for e in find_exposures("STIs, sti, still, sticky", words)] == ["STIs", "sti"]
    assert find_exposures("anything", []) == []


def test_newsletter_dates(copy: tuple[Settings, Path]) -> None:
    settings, root = copy
    path = root / "newsletters" / "2026-12-08-winter-note.md"
    _replace(path, 'not_after: "2026-12-10 20:00"', 'not_after: "2026-12-01 20:00"')
    other = root / "newsletters" / "2027-01-01-bad-date.md"
    other.write_text('---\nsubject: "Hello"\npreheader: "A note"\nsend_at: "next week"\n---\nHi\n')
    lines = _lines(check(settings))
    assert f"{path}:5: not_after must be after send_at" in lines
    assert any(
        line.startswith(f"{other}:4: send_at: expected 'YYYY-MM-DD HH:MM'") for line in lines
    )


def test_broken_layout_template_is_reported(copy: tuple[Settings, Path]) -> None:
    settings, _ = copy
    footer = Path(settings.templates_dir) / "email" / "_footer.mjml.j2"
    _replace(footer, "{{ disclaimer }}", "{{ disclaimer }")
    problems = check(settings)
    at = _line_of(footer, "{{ disclaimer }")
    assert any(
        p.path == str(footer) and p.line == at and "template syntax error" in p.message
        for p in problems
    ), _lines(problems)
    assert exit_status(problems) == 1


def test_mjml_that_does_not_compile_is_reported(copy: tuple[Settings, Path]) -> None:
    settings, _ = copy
    layout = Path(settings.templates_dir) / "email" / "layout.mjml.j2"
    _replace(layout, "</mjml>", "")
    problems = check(settings)
    assert any(p.path == str(layout) and "MJML did not compile" in p.message for p in problems), (
        _lines(problems)
    )


def test_problem_format() -> None:
    assert str(Problem("a.md", 3, "boom")) == "a.md:3: boom"
    assert str(Problem("a.md", 3, "hm", "warning")) == "a.md:3: warning: hm"
