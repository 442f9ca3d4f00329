"""The copy a therapist signs: written fresh, and safe to send.

Every email is checked against the two source articles (no shared run of six words),
and every rendered email is checked for the safety wording its settings provide:
``CRISIS_LINE`` in each marketing email and confirmation, ``REPLY_POLICY`` wherever the
body invites a reply. ``nurture check`` warns about a missing policy, and production
start-up refuses an empty crisis line.
"""

from __future__ import annotations

import re
import shutil
from html import unescape
from pathlib import Path

import pytest

from nurture.campaigns import NEWSLETTERS, load_catalogue
from nurture.campaigns.check import INVITES_REPLY, check, exit_status
from nurture.exceptions import ConfigurationError
from nurture.rendering import Renderer
from nurture.settings import Settings, load_settings
from tests.helpers import production_settings

ROOT = Path(__file__).resolve().parents[2]
#: The published articles the sequences are drawn from (copies of ../shared/seeds).
ARTICLES = sorted((ROOT / "tests" / "data" / "articles").glob("*.txt"))
#: Any shared run of this many words counts as copying.
NGRAM = 6
#: Distinctive values, so a test can only pass when the setting itself is rendered.
CRISIS = "Not watched for emergencies: in danger, ring 000 or go to the nearest hospital."
POLICY = "Replies reach me, Alex, within five working days, and a reply is not therapy."


def _words(text: str) -> list[str]:
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    return re.findall(r"[a-z0-9]+(?:'[a-z0-9]+)*", text)


def _ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    words = _words(text)
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _email_files() -> list[Path]:
    """Every step and newsletter file (SOURCES.md cites the articles' headings on purpose)."""
    return sorted(p for p in (ROOT / "campaigns").rglob("*.md") if p.name != "SOURCES.md")


def _flat(text: str) -> str:
    return " ".join(unescape(text).split())


@pytest.fixture
def local(settings: Settings) -> Settings:
    return settings.model_copy(update={"crisis_line": CRISIS, "reply_policy": POLICY}, deep=True)


# -- written fresh -----------------------------------------------------------------


def test_the_articles_are_there() -> None:
    assert len(ARTICLES) == 2
    assert all(len(_words(a.read_text(encoding="utf-8"))) > 500 for a in ARTICLES)


def test_the_ngram_check_catches_a_copied_phrase() -> None:
    article = ARTICLES[0].read_text(encoding="utf-8")
    copied = " ".join(_words(article)[200:206])
    assert _ngrams(f"Some words of my own, then {copied.upper()}.") & _ngrams(article)
    assert not _ngrams("Some words of my own, nothing borrowed at all here.") & _ngrams(article)


@pytest.mark.parametrize("path", _email_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_email_shares_six_words_in_a_row_with_an_article(path: Path) -> None:
    mine = _ngrams(path.read_text(encoding="utf-8"))
    for article in ARTICLES:
        shared = sorted(" ".join(g) for g in mine & _ngrams(article.read_text(encoding="utf-8")))
        assert len(shared) < 1, f"{path.name} repeats {article.name}: {shared}"


def test_no_email_promises_a_free_consultation() -> None:
    for path in _email_files():
        assert "free consultation" not in path.read_text(encoding="utf-8").lower(), path


# -- safety wording in every rendered email ----------------------------------------------


def _marketing_keys(settings: Settings) -> list[tuple[str, str]]:
    catalogue = load_catalogue(settings)
    keys = [(c.slug, s.slug) for c in catalogue.campaigns.values() for s in c.steps]
    return keys + [(NEWSLETTERS, slug) for slug in catalogue.newsletters]


def test_crisis_line_is_in_every_marketing_email(local: Settings) -> None:
    renderer = Renderer(local, load_catalogue(local))
    keys = _marketing_keys(local)
    assert len(keys) >= 17
    for campaign, step in keys:
        content = renderer.compile(campaign, step)
        assert content.marketing
        assert CRISIS in _flat(content.text), (campaign, step)
        assert CRISIS in _flat(content.html), (campaign, step)


def test_crisis_line_is_in_every_confirmation(local: Settings) -> None:
    renderer = Renderer(local, load_catalogue(local))
    for campaign in [*load_catalogue(local).campaigns, NEWSLETTERS]:
        content = renderer.compile_confirmation(campaign)
        assert not content.marketing
        assert CRISIS in _flat(content.text), campaign
        assert CRISIS in _flat(content.html), campaign


def test_reply_policy_is_in_every_email_that_invites_replies(local: Settings) -> None:
    catalogue = load_catalogue(local)
    renderer = Renderer(local, catalogue)
    inviting = [
        (campaign, step)
        for campaign, step in _marketing_keys(local)
        if INVITES_REPLY.search(catalogue.content_for(campaign, step).body)
    ]
    assert len(inviting) >= 5  # the detector finds the shipped invitations
    for campaign, step in inviting:
        content = renderer.compile(campaign, step)
        text, html = _flat(content.text), _flat(content.html)
        assert POLICY in text and POLICY in html, (campaign, step)
        # Near the invitation: in the body, before the footer starts.
        assert text.index(POLICY) < text.index(CRISIS), (campaign, step)


def test_the_footer_names_the_site_not_the_article(settings: Settings) -> None:
    renderer = Renderer(settings, load_catalogue(settings))
    content = renderer.compile("what-i-actually-do", "01-welcome")
    footer = _flat(content.text.split("\n----\n", 1)[1])
    assert "after reading an article on www.example-practice.com" in footer
    assert "Sex Therapist" not in footer


def test_offer_comes_from_the_setting(settings: Settings) -> None:
    offered = settings.model_copy(update={"consultation_offer": "a 20-minute call at no cost"})
    content = Renderer(offered, load_catalogue(offered)).compile(
        "what-i-actually-do", "10-an-open-door"
    )
    assert "book a 20-minute call at no cost" in _flat(content.text)


# -- nurture check -----------------------------------------------------------------------


def test_check_warns_when_replies_are_invited_and_no_policy_is_set(settings: Settings) -> None:
    assert [p for p in check(settings) if p.severity == "warning"] == []
    unset = settings.model_copy(update={"reply_policy": "  "})
    problems = check(unset)
    warned = [p for p in problems if "NURTURE_REPLY_POLICY" in p.message]
    catalogue = load_catalogue(settings)
    inviting = {
        str(catalogue.content_for(c, s).path)
        for c, s in _marketing_keys(settings)
        if INVITES_REPLY.search(catalogue.content_for(c, s).body)
    }
    assert {p.path for p in warned} == inviting
    assert all(p.severity == "warning" for p in warned)
    assert exit_status(problems) == 0  # a warning, not an error


def test_check_warns_when_an_invitation_has_no_policy_beside_it(
    settings: Settings, tmp_path: Path
) -> None:
    root = tmp_path / "campaigns"
    shutil.copytree(settings.campaigns_dir, root)
    path = root / "what-i-actually-do" / "04-the-stories-we-carry.md"
    path.write_text(
        path.read_text().replace("Take care,", "Do write back and tell me.\n\nTake care,", 1)
    )
    problems = check(settings.model_copy(update={"campaigns_dir": root}))
    line = next(
        n for n, text in enumerate(path.read_text().splitlines(), 1) if "write back" in text
    )
    assert [str(p) for p in problems] == [
        f"{path}:{line}: warning: this email invites replies: "
        "put {{ reply_policy }} near the invitation"
    ]


# -- production start-up -------------------------------------------------------------------


def test_production_refuses_an_empty_crisis_line(tmp_path: Path) -> None:
    assert production_settings(tmp_path).crisis_line  # the shipped default is accepted
    with pytest.raises(ConfigurationError, match="NURTURE_CRISIS_LINE"):
        production_settings(tmp_path, crisis_line="   ")


def test_outside_production_an_empty_crisis_line_is_allowed(settings: Settings) -> None:
    relaxed = load_settings(env="test", var_dir=settings.var_dir, crisis_line="", _env_file=None)
    assert relaxed.crisis_line == ""
