"""What the browser tests share (not a test module): the studio's test password, a
login, and axe-core's verdict on a page (WCAG 2.1 A/AA, serious and critical only)."""

from __future__ import annotations

import re
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
