"""The operator's files in scheduler/: alert rules name real metrics, units carry their keys.

Nothing here needs systemd, Prometheus or Postfix; scheduler/README.md ("What was
verified here") records the checks made with the real tools.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from nurture.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SCHEDULER = ROOT / "scheduler"
#: Series a prometheus_client Counter or Histogram adds to the name it is given.
_SUFFIXES = ("_bucket", "_count", "_sum", "_created")


def _defined_metrics() -> set[str]:
    """Metric names given to prometheus_client in nurture/metrics.py (string literals)."""
    source = (ROOT / "nurture" / "metrics.py").read_text()
    return set(re.findall(r'"(nurture_[a-z0-9_]+)"', source))


def _series_name_exists(name: str, defined: set[str]) -> bool:
    if name in defined:
        return True
    return any(name.endswith(s) and name.removesuffix(s) in defined for s in _SUFFIXES)


def _rules() -> list[dict[str, object]]:
    document = yaml.safe_load((SCHEDULER / "prometheus" / "nurture-alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_alert_rules_name_only_metrics_nurture_exports() -> None:
    defined = _defined_metrics()
    assert {"nurture_sends_total", "nurture_outbox_rows", "nurture_database_up"} <= defined
    for rule in _rules():
        used = set(re.findall(r"\bnurture_[a-z0-9_]+", str(rule["expr"])))
        unknown = {name for name in used if not _series_name_exists(name, defined)}
        assert not unknown, f"{rule['alert']} uses metrics nurture does not export: {unknown}"


def test_alert_rules_cover_what_the_guide_promises() -> None:
    rules = {str(rule["alert"]): str(rule["expr"]) for rule in _rules()}
    assert 'status="queued"' in rules["NurtureQueueDeep"]
    assert 'status="unknown"' in rules["NurtureUnknownRows"]
    assert 'state="failed"' in rules["NurtureSendsFailed"]
    assert "nurture_tick_duration_seconds_count" in rules["NurtureDispatchStalled"]
    assert "nurture_database_up" in rules["NurtureDatabaseDown"]
    for rule in _rules():
        assert rule["labels"]["severity"] in ("warning", "critical")  # type: ignore[index]
        readme = (SCHEDULER / "README.md").read_text()
        assert f"**{rule['alert']}**" in readme, f"{rule['alert']} is not described"


def _unit(path: Path) -> dict[str, list[str]]:
    """``Key`` -> every value it is given in a systemd unit file (keys may repeat)."""
    values: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


SERVE_UNITS = ["nurture.service", "nurture-web@.service", "nurture-scheduler.service"]


@pytest.mark.parametrize("name", [*SERVE_UNITS, "nurture-backup.service"])
def test_units_run_as_nurture_with_the_env_file_and_hardening(name: str) -> None:
    unit = _unit(SCHEDULER / name)
    assert unit["User"] == ["nurture"] and unit["Group"] == ["nurture"]
    assert unit["EnvironmentFile"] == ["/etc/nurture/nurture.env"]
    assert unit["WorkingDirectory"] == ["/srv/nurture"]
    assert unit["NoNewPrivileges"] == ["true"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["ProtectHome"] == ["true"]
    assert unit["PrivateTmp"] == ["true"]
    assert unit["CapabilityBoundingSet"] == [""]


@pytest.mark.parametrize("name", SERVE_UNITS)
def test_serve_units_restart_and_stop_gracefully(name: str) -> None:
    unit = _unit(SCHEDULER / name)
    (command,) = unit["ExecStart"]
    assert command.startswith("/srv/nurture/.venv/bin/nurture serve")
    assert unit["Restart"] == ["on-failure"]
    assert unit["RestartPreventExitStatus"] == ["2"]  # refused settings: no restart loop
    assert unit["KillSignal"] == ["SIGTERM"]
    # The web drain (10 s) plus one SendGrid request (SENDGRID_TIMEOUT, 30 s).
    assert int(unit["TimeoutStopSec"][0]) >= 10 + Settings.model_fields["sendgrid_timeout"].default
    assert unit["StateDirectory"] == ["nurture"]


def test_the_backup_unit_runs_the_shipped_script_on_a_timer() -> None:
    unit = _unit(SCHEDULER / "nurture-backup.service")
    assert unit["Type"] == ["oneshot"]
    assert unit["ExecStart"] == ["/srv/nurture/scheduler/nurture-backup"]
    script = SCHEDULER / "nurture-backup"
    assert script.stat().st_mode & 0o111, "the backup script must be executable"
    assert "db backup" in script.read_text()
    timer = _unit(SCHEDULER / "nurture-backup.timer")
    assert timer["OnCalendar"] and timer["Persistent"] == ["true"]


def test_the_env_example_names_only_real_settings() -> None:
    text = (SCHEDULER / "nurture.env.example").read_text()
    names = re.findall(r"^#?NURTURE_([A-Z0-9_]+)=", text, flags=re.MULTILINE)
    assert names
    unknown = {n for n in names if n.lower() not in Settings.model_fields}
    assert not unknown, f"nurture.env.example names unknown settings: {unknown}"
    for path_setting in ("VAR_DIR", "CAMPAIGNS_DIR", "TEMPLATES_DIR"):  # the Postfix pipe
        assert re.search(rf"^NURTURE_{path_setting}=/", text, flags=re.MULTILINE)
