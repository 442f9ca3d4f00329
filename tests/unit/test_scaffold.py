"""``nurture new-campaign``'s core: a campaign drafted from an article (issue 14, item 1).

Both seed articles (copies of ../shared/seeds in tests/data/articles) map one to one:
one step per section, the opening section named by the title. The draft is an outline
of quoted notes, never copy, and ``nurture check`` refuses to publish a step that still
holds notes, while the drafts themselves never hold up the rest of the folder.
"""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from nurture.campaigns import load_catalogue, notes, parse_delay
from nurture.campaigns.article import looks_like_heading, parse_article
from nurture.campaigns.check import check, exit_status
from nurture.campaigns.discretion import find_exposures
from nurture.campaigns.scaffold import MAX_SUBJECT, Scaffold, scaffold, write_scaffold
from nurture.exceptions import CampaignError
from nurture.rendering import Renderer
from nurture.settings import Settings

ARTICLES = Path(__file__).resolve().parents[1] / "data" / "articles"
URL = "https://www.example-practice.com/articles/new"

#: Each seed article's headings, counted by hand: the title (naming the opening
#: section), then every section heading, in order.
HEADINGS = {
    "what-i-actually-do": [
        "What I Actually Do as a Sex Therapist",
        "What I Don't Do",
        "What I Actually Do",
        "What A Session Actually Looks Like",
        "The Surprising Parts of This Work",
        "Why This Work Matters",
        "If You're Considering Sex Therapy",
    ],
    "beginning-therapy": [
        "What to Expect When You Begin Sex Therapy",
        "The Holistic Nature of Sexual Health Treatment",
        "Navigating Vulnerability and Building Trust",
        "The Realistic Timeline for Meaningful Change",
        "The Client\u2019s Role in Therapeutic Success",
    ],
}


def _article(name: str) -> str:
    return (ARTICLES / f"{name}.txt").read_text(encoding="utf-8")


def _draft(settings: Settings, name: str, slug: str = "new-series") -> Scaffold:
    return scaffold(_article(name), slug=slug, url=URL, settings=settings)


@pytest.fixture
def folder(settings: Settings, tmp_path: Path) -> tuple[Settings, Path]:
    """Settings pointing at a private copy of the shipped campaigns."""
    root = tmp_path / "campaigns"
    shutil.copytree(settings.campaigns_dir, root)
    return settings.model_copy(update={"campaigns_dir": root}), root


def _mine(problems: list[object], folder: Path) -> list[str]:
    return [str(p) for p in problems if str(p).startswith(str(folder))]


# -- the seed articles map one to one ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(HEADINGS))
def test_each_seed_article_maps_one_step_per_section(settings: Settings, name: str) -> None:
    text = _article(name)
    headings = HEADINGS[name]
    # The hand count matches the article: each heading is a line of its own.
    lines = [line.strip() for line in text.splitlines()]
    assert all(heading in lines for heading in headings)
    assert sum(looks_like_heading(line) for line in lines if line) == len(headings)

    drafted = _draft(settings, name)

    assert [step.heading for step in drafted.steps] == headings
    assert [step.slug[:3] for step in drafted.steps] == [
        f"{n:02d}-" for n in range(1, len(headings) + 1)
    ]
    assert drafted.title == headings[0]
    assert drafted.files().keys() == {"campaign.yaml", *(f"{s.slug}.md" for s in drafted.steps)}


@pytest.mark.parametrize("name", sorted(HEADINGS))
def test_notes_quote_every_paragraph_of_the_section_word_for_word(
    settings: Settings, name: str
) -> None:
    text = " ".join(_article(name).split())
    sections = parse_article(_article(name)).sections
    for step, section in zip(_draft(settings, name).steps, sections, strict=True):
        assert len(step.notes) == len(section.paragraphs)
        for point, paragraph in zip(step.notes, section.paragraphs, strict=True):
            assert point.rstrip("\u2026") in text
            assert paragraph.startswith(point.rstrip("\u2026"))
        note_lines = [line for line in step.text.splitlines() if notes.is_note(line)]
        assert len(note_lines) == len(step.notes) + 1  # the guide, then one per point
        assert section.heading is not None and section.heading in note_lines[0]


@pytest.mark.parametrize("name", sorted(HEADINGS))
def test_no_text_is_invented_outside_the_notes(settings: Settings, name: str) -> None:
    for step in _draft(settings, name).steps:
        body = step.text.split("\n---\n", 1)[1]
        written = [line for line in body.splitlines() if line and not notes.is_note(line)]
        assert written == ["Hi {{ first_name }},", "{{ therapist_name }}"]


@pytest.mark.parametrize("name", sorted(HEADINGS))
def test_subjects_and_preheaders_are_discreet(settings: Settings, name: str) -> None:
    words = settings.discretion_words
    drafted = _draft(settings, name)
    for number, step in enumerate(drafted.steps, 1):
        assert find_exposures(step.subject, words) == [], step.subject
        assert find_exposures(step.preheader, words) == [], step.preheader
        assert len(step.subject) <= MAX_SUBJECT
        assert step.subject.startswith(f"Part {number}: ") or step.subject.endswith(f"({number})")
        assert find_exposures(step.slug, words) == [], step.slug
    assert find_exposures(drafted.name, words) == []
    # A discreet heading is used whole; a heading with a listed word is cut before it.
    subjects = [step.subject for step in drafted.steps]
    if name == "what-i-actually-do":
        assert "Part 2: What I Don't Do" in subjects
        assert "Part 7: If You're Considering\u2026" in subjects
    else:
        assert "Part 3: Navigating Vulnerability and Building Trust" in subjects
        assert "Part 2: The Holistic Nature\u2026" in subjects


def test_delays_start_at_once_then_two_to_four_days(settings: Settings) -> None:
    delays = [parse_delay(step.delay) for step in _draft(settings, "what-i-actually-do").steps]
    assert delays[0] == timedelta(0)
    assert all(timedelta(days=2) <= d <= timedelta(days=4) for d in delays[1:])
    assert delays == sorted(delays)


# -- check: drafts warn, publishing with notes is refused ----------------------------------


@pytest.mark.parametrize("name", sorted(HEADINGS))
def test_check_refuses_to_publish_notes_and_accepts_the_rewritten_letters(
    folder: tuple[Settings, Path], name: str
) -> None:
    settings, root = folder
    drafted = _draft(settings, name)
    target = write_scaffold(drafted, root)
    campaign = load_catalogue(settings).campaigns[drafted.slug]
    assert campaign.steps == () and len(campaign.drafts) == len(drafted.steps)

    # As drafted: every step is a draft, so the notes are warnings with file and line,
    # and the rest of the folder (and the running service's reload) is not held up.
    problems = check(settings)
    assert exit_status(problems) == 0
    mine = _mine(problems, target)
    assert len(mine) == len(drafted.steps)
    for step, line in zip(drafted.steps, mine, strict=True):
        first_note = _line_of(target / f"{step.slug}.md", notes.MARKER)
        assert line.startswith(f"{target / step.slug}.md:{first_note}: warning: draft: ")

    # Publishing a step that still holds notes: an error at the first note's line.
    first = target / f"{drafted.steps[0].slug}.md"
    first.write_text(first.read_text().replace("draft: true\n", ""))
    problems = check(settings)
    assert exit_status(problems) == 1
    errors = [str(p) for p in problems if p.is_error]
    assert errors == [
        f"{first}:{_line_of(first, notes.MARKER)}: {len(drafted.steps[0].notes) + 1} notes "
        "to rewrite ('> NOTE:' lines): write this part in your own words and delete them; "
        "an email still holding notes cannot be published"
    ]

    # The therapist's own letters, notes gone, drafts published: nothing left to report.
    for number, step in enumerate(drafted.steps, 1):
        path = target / f"{step.slug}.md"
        front = path.read_text().split("\n---\n", 1)[0].replace("\ndraft: true", "")
        own = f"My own letter, number {number}, written for you. [Book]({{{{ links.booking }}}})"
        body = f"Hi {{{{ first_name }}}},\n\n{own}\n\n{{{{ therapist_name }}}}\n"
        path.write_text(f"{front}\n---\n{body}")
    problems = check(settings)
    assert _mine(problems, target) == []
    assert exit_status(problems) == 0
    published = load_catalogue(settings)
    assert [s.slug for s in published.campaigns[drafted.slug].steps] == [
        s.slug for s in drafted.steps
    ]
    content = Renderer(settings, published).compile(drafted.slug, drafted.steps[1].slug)
    assert "My own letter, number 2" in content.text


def _line_of(path: Path, fragment: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if fragment in line)


def test_a_draft_with_notes_previews(folder: tuple[Settings, Path]) -> None:
    settings, root = folder
    drafted = _draft(settings, "beginning-therapy")
    write_scaffold(drafted, root)
    content = Renderer(settings, load_catalogue(settings)).compile(
        drafted.slug, drafted.steps[0].slug
    )
    assert "NOTE:" in content.text and content.subject == drafted.steps[0].subject


# -- other articles ----------------------------------------------------------------------------


MARKDOWN = """---
title: "Sleep, Stress and You"
---
# Sleep, Stress and You

An opening paragraph about rest. It has a second sentence.

## Why Sleep Matters

Sleep restores the body. More words here.

### A smaller heading

- A list item that counts as a point.
- Another one with a [link](https://example.com).

## What Helps

Short walks help. So does daylight.
"""


def test_markdown_headings_cut_the_sections(settings: Settings) -> None:
    drafted = scaffold(MARKDOWN, slug="sleep", url=URL, settings=settings, fmt="markdown")
    assert drafted.title == "Sleep, Stress and You"
    assert [s.heading for s in drafted.steps] == [
        "Sleep, Stress and You",
        "Why Sleep Matters",
        "What Helps",
    ]
    assert drafted.steps[1].notes == (
        "Sleep restores the body.",
        "A smaller heading",
        "A list item that counts as a point.",
        "Another one with a link.",
    )
    assert [s.slug for s in drafted.steps] == [
        "01-sleep-stress-and-you",
        "02-why-sleep-matters",
        "03-what-helps",
    ]


def test_an_article_without_headings_is_grouped_by_paragraphs(settings: Settings) -> None:
    paragraphs = [f"Paragraph {n} begins here. " + "More words follow. " * 40 for n in range(1, 9)]
    text = "A Plain Title\n\n" + "\n\n".join(paragraphs)
    drafted = scaffold(text, slug="plain", url=URL, settings=settings, fmt="text")
    assert 2 <= len(drafted.steps) <= len(paragraphs)
    assert all(step.heading is None for step in drafted.steps)
    quoted = [point for step in drafted.steps for point in step.notes]
    assert quoted == [f"Paragraph {n} begins here." for n in range(1, 9)]
    assert [s.subject for s in drafted.steps][:2] == [
        "A note from the practice (1)",
        "A note from the practice (2)",
    ]


def test_template_syntax_in_an_article_stays_text(folder: tuple[Settings, Path]) -> None:
    settings, root = folder
    text = "A Title Here\n\nUse {{ evil }} and {% raw %} here. Then more.\n"
    target = write_scaffold(scaffold(text, slug="odd", url=URL, settings=settings), root)
    problems = _mine(check(settings), target)
    assert len(problems) == 1 and "warning: draft:" in problems[0]


@pytest.mark.parametrize(
    ("slug", "url", "message"),
    [
        ("Bad Slug", URL, "slug"),
        ("snippets", URL, "slug"),
        ("newsletters", URL, "slug"),
        ("fine", "http://insecure.example.com/x", "https://"),
    ],
)
def test_bad_slugs_and_urls_are_refused(
    settings: Settings, slug: str, url: str, message: str
) -> None:
    with pytest.raises(CampaignError, match=re.escape(message)):
        scaffold(_article("beginning-therapy"), slug=slug, url=url, settings=settings)


def test_an_existing_folder_is_never_overwritten(folder: tuple[Settings, Path]) -> None:
    settings, root = folder
    drafted = _draft(settings, "beginning-therapy", slug="beginning-therapy")
    before = (root / "beginning-therapy" / "campaign.yaml").read_text()
    with pytest.raises(CampaignError, match="already exists"):
        write_scaffold(drafted, root)
    assert (root / "beginning-therapy" / "campaign.yaml").read_text() == before
    assert [p.name for p in root.iterdir() if p.name.startswith(".beginning-therapy.")] == []
