"""``nurture new-campaign`` in a subprocess, as the therapist runs it (issue 14, item 1)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.helpers import ROOT, run_cli

ARTICLE = ROOT / "tests" / "data" / "articles" / "what-i-actually-do.txt"
URL = "https://www.example-practice.com/articles/what-i-actually-do"


def test_new_campaign_drafts_the_folder_and_prints_the_sign_up_form(tmp_path: Path) -> None:
    campaigns = tmp_path / "campaigns"
    shutil.copytree(ROOT / "campaigns", campaigns)
    env = {"NURTURE_CAMPAIGNS_DIR": str(campaigns), "NURTURE_BASE_URL": "https://mail.test"}
    args = ["new-campaign", "--from", str(ARTICLE), "--slug", "doing", "--url", URL]

    result = run_cli(tmp_path, *args, env=env)

    assert result.returncode == 0, result.stderr
    folder = campaigns / "doing"
    assert sorted(p.name for p in folder.iterdir())[0] == "01-what-i-actually-do.md"
    assert len(list(folder.glob("*.md"))) == 7
    out = result.stdout
    assert f"drafted {folder}/" in out and "7 steps" in out
    assert '<form class="nurture-form" method="post" action="https://mail.test/subscribe"' in out
    assert '<input type="hidden" name="campaign" value="doing">' in out
    assert 'name="website"' in out  # the honeypot travels with the form

    checked = run_cli(tmp_path, "check", env=env)
    assert checked.returncode == 0, checked.stdout
    assert checked.stdout.count("warning: draft: ") == 7

    again = run_cli(tmp_path, *args, env=env)
    assert again.returncode == 1
    assert "already exists" in again.stderr


def test_new_campaign_reads_markdown_and_refuses_a_bad_url(tmp_path: Path) -> None:
    campaigns = tmp_path / "campaigns"
    shutil.copytree(ROOT / "campaigns", campaigns)
    env = {"NURTURE_CAMPAIGNS_DIR": str(campaigns)}
    article = tmp_path / "article.md"
    article.write_text(
        "# Rest\n\nOpening words. More.\n\n## Part One\n\nText.\n\n## Part Two\n\nMore text.\n"
    )

    bad = run_cli(
        tmp_path,
        "new-campaign",
        "--from",
        str(article),
        "--slug",
        "rest",
        "--url",
        "http://x.example/a",
        env=env,
    )
    assert bad.returncode == 1 and "https://" in bad.stderr
    assert not (campaigns / "rest").exists()

    good = run_cli(
        tmp_path,
        "new-campaign",
        *("--from", str(article), "--slug", "rest", "--url", "https://x.example/a"),
        *("--title", "Resting well"),
        env=env,
    )
    assert good.returncode == 0, good.stderr
    yaml = (campaigns / "rest" / "campaign.yaml").read_text()
    assert 'title: "Resting well"' in yaml
    assert [p.name for p in sorted((campaigns / "rest").glob("*.md"))] == [
        "01-rest.md",
        "02-part-one.md",
        "03-part-two.md",
    ]
