"""Rendering: Markdown to HTML and text, the sandbox, layouts, and compiling once per step."""

from __future__ import annotations

from dataclasses import replace
from html import unescape
from html.parser import HTMLParser

import pytest
from jinja2 import UndefinedError
from jinja2.exceptions import SecurityError

from nurture.campaigns import NEWSLETTERS, Catalogue, load_catalogue
from nurture.exceptions import CampaignError, RenderError
from nurture.mail.links import Link, LinkIds
from nurture.mail.messages import Batch, Recipient, Sender
from nurture.mail.recipients import first_name_value
from nurture.rendering import Renderer, compiler, markdown
from nurture.settings import Settings

CAMPAIGN, STEP = "what-i-actually-do", "01-welcome"


@pytest.fixture
def catalogue(settings: Settings) -> Catalogue:
    return load_catalogue(settings)


@pytest.fixture
def renderer(settings: Settings, catalogue: Catalogue) -> Renderer:
    return Renderer(settings, catalogue)


def _values(**extra: str) -> dict[str, str]:
    return {
        "first_name": "Sam",
        "unsubscribe_url": "https://practice.test/unsubscribe/TOKEN-1",
        "preferences_url": "https://practice.test/preferences/TOKEN-1",
        **extra,
    }


def _flat(text: str) -> str:
    """The text with its wrapping undone."""
    return " ".join(text.split())


# -- Markdown ---------------------------------------------------------------------


def test_text_has_links_as_footnotes_and_wrapped_paragraphs() -> None:
    source = (
        "Hello there. "
        * 12
        + "\n\nRead [the article](https://a.example/one), then [book](https://a.example/two)"
        " or [the article again](https://a.example/one).\n\n- first\n- second\n\n"
        "## A heading\n\n1. one\n2. two\n\nWarmly,\nAlex\n"
    )
    text = markdown.to_text(source)
    assert all(len(line) <= 72 for line in text.splitlines())
    assert "Read the article [1], then book [2] or the article again [1]." in text
    assert text.rstrip().endswith("[1] https://a.example/one\n[2] https://a.example/two")
    assert "- first\n- second" in text
    assert "A heading\n---------" in text
    assert "1. one\n2. two" in text
    assert "Warmly,\nAlex" in text  # a single line break is kept, as in a letter
    assert "<" not in text


def test_html_escapes_raw_html_and_keeps_line_breaks() -> None:
    html = markdown.to_html('Hi <script>alert("x")</script> & [a](https://a.example)\nBye')
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert '<a href="https://a.example">a</a><br />' in html


def test_javascript_links_are_not_rendered() -> None:
    assert "href" not in markdown.to_html("[x](javascript:alert(1))")


# -- the sandbox --------------------------------------------------------------------


def test_undefined_variable_is_an_error(settings: Settings) -> None:
    with pytest.raises(UndefinedError):
        compiler.render_body(settings, "Hi {{ frist_name }}", "https://a.example")


def test_sandbox_blocks_unsafe_access(settings: Settings) -> None:
    with pytest.raises(SecurityError):
        compiler.render_body(settings, "{{ links.__class__.__mro__ }}", "https://a.example")


def test_first_name_survives_markdown_as_placeholders(settings: Settings) -> None:
    body = compiler.render_body(settings, "**Hi {{ first_name }}**, see {{ links.booking }}", "")
    assert "<strong>Hi %%first_name|html%%</strong>" in body.html
    assert "*Hi %%first_name%%*" in body.text
    assert settings.booking_url in body.text


def test_first_name_through_a_filter_is_refused(settings: Settings) -> None:
    with pytest.raises(RenderError, match="first_name"):
        compiler.render_body(settings, "Hi {{ first_name|upper }}", "")


def test_first_name_value() -> None:
    assert first_name_value("  Sam  ", "there") == "Sam"
    assert first_name_value("Mary  Ann\n", "there") == "Mary Ann"
    assert first_name_value("", "there") == "there"
    assert first_name_value(None, "friend") == "friend"
    assert first_name_value("   ", "there") == "there"


# -- compiled content -----------------------------------------------------------------


def test_compiled_step(renderer: Renderer, settings: Settings, catalogue: Catalogue) -> None:
    content = renderer.compile(CAMPAIGN, STEP)
    step = catalogue.campaigns[CAMPAIGN].step(STEP)
    assert (content.campaign, content.step, content.marketing) == (CAMPAIGN, STEP, True)
    assert content.subject == step.subject and content.preheader == step.preheader
    for part in (content.html, content.text):
        assert "{{" not in part and "{%" not in part
    assert "%%first_name|html%%" in content.html and "%%first_name%%" in content.text
    # Links take the plain placeholder in HTML too (never escaped: see settings' BASE_URL).
    assert 'href="%%unsubscribe_url%%"' in content.html
    assert 'href="%%preferences_url%%"' in content.html
    assert "_url|html%%" not in content.html
    assert "Unsubscribe: %%unsubscribe_url%%" in content.text
    assert "Preferences: %%preferences_url%%" in content.text
    assert settings.postal_address in content.text
    assert "Example Practice, 1 Test Street, Testville" in content.html
    assert step.preheader in unescape(content.html)
    why = "signed up for these letters after reading an article on www.example-practice.com"
    assert why in _flat(content.text) and why in _flat(content.html)
    assert "not medical advice" in _flat(content.text) and "not medical advice" in content.html
    # LINK_COUNTS (on by default): the article link goes through /l/, naming the link only
    ids = LinkIds(settings.secret_key_values(), settings.base_url)
    wrapped = ids.url(Link(CAMPAIGN, step.slug, catalogue.campaigns[CAMPAIGN].article_url))
    assert wrapped in content.text and wrapped in content.html
    assert "<img" not in content.html  # no tracking pixel
    html, text = content.personalise(_values(first_name="Sam & <Jo>"))
    assert "Hi Sam &amp; &lt;Jo&gt;," in html
    assert "Hi Sam & <Jo>," in text
    assert "%%" not in html and "%%" not in text


def test_newsletter_footer_names_the_practice(renderer: Renderer, settings: Settings) -> None:
    content = renderer.compile(NEWSLETTERS, "2026-12-08-winter-note")
    assert content.marketing
    assert f"occasional notes from {settings.practice_name}" in _flat(content.text)
    assert "signed up after reading" not in _flat(content.text)


def test_confirmation_is_transactional(renderer: Renderer, settings: Settings) -> None:
    content = renderer.compile_confirmation(CAMPAIGN)
    assert content.marketing is False
    assert content.subject == "Please confirm your email address"
    assert content.preheader in unescape(content.html)
    assert 'href="%%confirm_url%%"' in content.html and "_url|html%%" not in content.html
    assert "%%confirm_url%%" in content.text
    assert "unsubscribe_url" not in content.html + content.text
    assert "7 days" in content.text
    assert "ignore this email" in _flat(content.text)
    assert "won't hear from us" in _flat(content.text)
    # A link is BASE_URL, a path and a URL-safe token: it goes into the HTML as it is.
    link = "https://practice.test/confirm/pub1.axX3AA.T0k-n_x"
    html, text = content.personalise({"first_name": "Sam", "confirm_url": link})
    assert f'href="{link}"' in html
    assert link in text
    assert "%%" not in html + text
    assert renderer.compile_confirmation(CAMPAIGN) is content


def test_each_step_compiles_once_for_many_recipients(
    renderer: Renderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = compiler.mjml2html

    def counting(source: str, **kwargs: object) -> str:
        calls.append(source)
        return real(source)

    monkeypatch.setattr(compiler, "mjml2html", counting)
    sender = Sender("hello@practice.test", "Alex Morgan")
    bodies = set()
    for n in range(200):
        content = renderer.compile(CAMPAIGN, STEP)  # as dispatch does, per recipient batch
        recipient = Recipient(f"reader{n}@example.com", _values(first_name=f"Reader {n}"))
        message = Batch(content, sender, [recipient]).mime(recipient)
        bodies.add(message.get_body(("html",)).get_content())  # type: ignore[union-attr]
    assert len(calls) == 1
    assert len(bodies) == 200
    assert renderer.compile(CAMPAIGN, STEP) is renderer.compile(CAMPAIGN, STEP)
    renderer.compile(CAMPAIGN, "02-saying-it-out-loud")
    assert len(calls) == 2


def test_mjml_source_is_the_compiled_one(renderer: Renderer) -> None:
    source = renderer.mjml_source(CAMPAIGN, STEP)
    assert source.lstrip().startswith("<mjml")
    assert 'href="%%unsubscribe_url%%"' in source
    assert compiler.compile_mjml(source) == renderer.compile(CAMPAIGN, STEP).html


def test_every_email_is_valid_html(renderer: Renderer, catalogue: Catalogue) -> None:
    keys = [(c.slug, s.slug) for c in catalogue.campaigns.values() for s in c.steps]
    keys += [(NEWSLETTERS, slug) for slug in catalogue.newsletters]
    for campaign, step in keys:
        html, _ = renderer.compile(campaign, step).personalise(_values())
        parser = _Tags()
        parser.feed(html)
        parser.close()
        assert {"html", "head", "body"} <= parser.tags, (campaign, step)
        assert 'name="viewport"' in html
        assert "max-width:600px" in html


def test_unknown_step_and_broken_body(settings: Settings, catalogue: Catalogue) -> None:
    renderer = Renderer(settings, catalogue)
    with pytest.raises(CampaignError):
        renderer.compile(CAMPAIGN, "99-nope")
    campaign = catalogue.campaigns[CAMPAIGN]
    broken = replace(campaign.steps[0], body="Hi {{ nobody }}")
    bad = Catalogue(
        {CAMPAIGN: replace(campaign, steps=(broken, *campaign.steps[1:]))}, catalogue.newsletters
    )
    with pytest.raises(RenderError, match="nobody"):
        Renderer(settings, bad).compile(CAMPAIGN, STEP)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
