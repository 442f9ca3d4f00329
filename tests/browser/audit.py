"""What the browser tests share (not a test module): the studio's test password, a
login, axe-core's verdict on a page (WCAG 2.1 A/AA, serious and critical only), a walk
through pages that checks each one, and the mail the folder backend wrote."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

PASSWORD = "a long studio password"
AXE = Path(__file__).parent / "node" / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = (1280, 390)


def log_in(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/studio/login")
    page.get_by_label("User name").fill("therapist")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r".*/studio/$"))


def axe_violations(page: Any) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = page.evaluate(
        """async () => await axe.run(document, {
            runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}
        })"""
    )
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


def audit(page: Any, visited: Iterator[str], shots: Path, width: int) -> dict[str, Any]:
    """Walks ``visited`` (a generator that moves ``page`` and yields each page's name):
    asserts that no page scrolls sideways, screenshots each into ``shots``, and returns
    the axe-core violations by page, with the first few elements each names."""
    shots.mkdir(parents=True, exist_ok=True)
    found = {}
    for name in visited:
        page.wait_for_load_state("load")
        found[name] = axe_violations(page)
        wide = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        assert not wide, f"{name} scrolls sideways at {width} px"
        page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
    return {
        name: [(v["id"], v["impact"], [n["target"] for n in v["nodes"][:3]]) for v in violations]
        for name, violations in found.items()
        if violations
    }


def wait_for_mail(folder: Path, count: int) -> list[EmailMessage]:
    """The messages the folder backend wrote, oldest first, once there are ``count``
    (another thread writes them: the files are all there is to watch)."""
    deadline = time.monotonic() + 15
    while True:
        files = (
            sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime) if folder.exists() else []
        )
        if len(files) >= count:
            parser = BytesParser(policy=policy.default)
            return [parser.parsebytes(f.read_bytes()) for f in files]  # type: ignore[misc]
        assert time.monotonic() < deadline, f"expected {count} emails in {folder}"
        time.sleep(0.05)
