"""A rendered email in Debian's headless chromium: readable on a phone, no sideways scroll."""

from __future__ import annotations

from typing import Any

import pytest

from nurture.campaigns import load_catalogue
from nurture.rendering import Renderer
from nurture.rendering.preview import sample_recipient
from nurture.settings import Settings

pytestmark = pytest.mark.browser


def _email_html(settings: Settings, campaign: str, step: str) -> str:
    catalogue = load_catalogue(settings)
    content = Renderer(settings, catalogue).compile(campaign, step)
    html, _ = content.personalise(sample_recipient(settings).values)
    return html


def _measure(browser: Any, html: str, width: int) -> dict[str, int]:
    page = browser.new_page(viewport={"width": width, "height": 800})
    try:
        # Block every request: the email must render from itself alone (no tracking pixel,
        # no remote fonts), and tests must not touch the network.
        page.route("**/*", lambda route: route.abort())
        page.set_content(html, wait_until="load")
        result: dict[str, int] = page.evaluate(
            """() => ({
                scrollWidth: document.documentElement.scrollWidth,
                innerWidth: window.innerWidth,
                bodyFont: parseFloat(getComputedStyle(
                    document.querySelector('.nurture-body div') || document.body).fontSize),
            })"""
        )
        return result
    finally:
        page.close()


@pytest.mark.parametrize("width", [375, 600])
def test_step_fits_the_screen(browser: Any, settings: Settings, width: int) -> None:
    html = _email_html(settings, "what-i-actually-do", "01-welcome")
    measured = _measure(browser, html, width)
    assert measured["innerWidth"] == width
    assert measured["scrollWidth"] <= measured["innerWidth"], measured
    assert measured["bodyFont"] >= 16  # readable on a phone without zooming


def test_confirmation_with_a_long_link_fits_a_phone(browser: Any, settings: Settings) -> None:
    catalogue = load_catalogue(settings)
    content = Renderer(settings, catalogue).compile_confirmation("what-i-actually-do")
    long_url = f"{settings.base_url}/confirm/" + "x" * 180
    html, _ = content.personalise({"first_name": "Sam", "confirm_url": long_url})
    measured = _measure(browser, html, 375)
    assert measured["scrollWidth"] <= measured["innerWidth"], measured
