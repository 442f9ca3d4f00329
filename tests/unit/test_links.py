"""Link ids (``nurture.mail.links``) and their rewriting at compile time."""

from __future__ import annotations

import pytest

from nurture.exceptions import TokenError
from nurture.mail.links import Link, LinkIds
from nurture.rendering import markdown

BASE = "https://practice.test"


def test_an_id_names_the_link_and_reads_back() -> None:
    ids = LinkIds(["newest", "older"], BASE)
    link = Link("what-i-actually-do", "01-welcome", "https://example.com/a?b=c")
    assert ids.read(ids.make(link)) == link
    assert ids.make(link) == ids.make(link)  # the same for every reader, every time


def test_rotation_keeps_old_ids_and_forgeries_fail() -> None:
    old = LinkIds(["older"], BASE).make(Link("c", "s", "https://example.com/"))
    assert LinkIds(["newest", "older"], BASE).read(old).target == "https://example.com/"
    with pytest.raises(TokenError):
        LinkIds(["newest"], BASE).read(old)
    for bad in ("", "x", old[:-2] + "AA", old + "x", "a" * 5000):
        with pytest.raises(TokenError):
            LinkIds(["older"], BASE).read(bad)


def test_only_web_links_are_wrapped_never_personal_ones() -> None:
    wrap = LinkIds(["k"], BASE).wrapper("c", "s")
    assert wrap("https://example.com/x").startswith(f"{BASE}/l/")
    for kept in (
        "mailto:a@b.c",
        "tel:123",
        "#top",
        f"{BASE}/unsubscribe/t",
        f"{BASE}/preferences/t",
    ):
        assert wrap(kept) == kept


def test_markdown_rewrites_links_in_both_parts() -> None:
    source = "Read [the article](https://example.com/a) or [write](mailto:me@example.com).\n"
    html = markdown.to_html(source, lambda url: url.replace("example.com", "x.test"))
    text = markdown.to_text(source, links=lambda url: url.replace("example.com", "x.test"))
    assert 'href="https://x.test/a"' in html and "[1] https://x.test/a" in text
    assert markdown.to_html(source) == markdown.to_html(source, None)
