"""Start-up refusals: contradicting timings anywhere, weak settings in production.

Each error names the setting, so the operator knows what to change.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nurture.exceptions import ConfigurationError
from nurture.settings import Settings, load_settings
from tests.helpers import production_settings


def test_the_production_baseline_is_accepted(tmp_path: Path) -> None:
    assert production_settings(tmp_path).env == "production"


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"secret_keys": "short-key-of-31-characters-xxxx"}, "NURTURE_SECRET_KEYS"),
        (
            {"secret_keys": "a-production-key-that-is-long-enough-0123456789,weak"},
            "NURTURE_SECRET_KEYS",
        ),
        ({"base_url": "http://practice.example.net"}, "NURTURE_BASE_URL"),
        ({"suppression_key": None}, "NURTURE_SUPPRESSION_KEY"),
        ({"delivery": "folder"}, "NURTURE_DELIVERY=folder"),
        ({"delivery": "console"}, "NURTURE_DELIVERY=console"),
        ({"sendgrid_api_key": None}, "NURTURE_SENDGRID_API_KEY"),
    ],
)
def test_production_refuses_weak_settings(
    tmp_path: Path, override: dict[str, object], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        production_settings(tmp_path, **override)


def test_local_delivery_in_production_only_when_allowed(tmp_path: Path) -> None:
    settings = production_settings(tmp_path, delivery="folder", allow_local_delivery=True)
    assert settings.delivery == "folder"


def test_a_32_character_key_is_enough(tmp_path: Path) -> None:
    assert production_settings(tmp_path, secret_keys="k" * 32).secret_keys


def _development(tmp_path: Path, **overrides: object) -> Settings:
    return load_settings(var_dir=tmp_path / "var", _env_file=None, **overrides)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        (
            {"delivery": "sendgrid", "sendgrid_timeout": 120, "lease_seconds": 300},
            "NURTURE_LEASE_SECONDS",
        ),
        ({"delivery": "smtp", "smtp_timeout": 60, "lease_seconds": 100}, "NURTURE_SMTP_TIMEOUT"),
        ({"tick_seconds": 600, "lease_seconds": 300}, "NURTURE_TICK_SECONDS"),
        ({"unknown_reconcile_minutes": 5, "lease_seconds": 300}, "UNKNOWN_RECONCILE_MINUTES"),
        ({"retry_give_up_hours": 0.001, "retry_base_seconds": 30}, "RETRY_GIVE_UP_HOURS"),
    ],
)
def test_timings_that_contradict_each_other_are_refused(
    tmp_path: Path, override: dict[str, object], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        _development(tmp_path, **override)


def test_default_timings_agree(tmp_path: Path) -> None:
    for delivery in ("folder", "sendgrid", "smtp"):
        assert _development(tmp_path, delivery=delivery).lease_seconds == 300


@pytest.mark.parametrize(
    "base_url",
    [
        "https://mail.example.com/?utm=1",
        "https://mail.example.com/#top",
        "https://mail.example.com/a&b",
        'https://mail.example.com/"x',
        "https://mail.example.com/<x>",
        "https://mail.example.com/it's",
        "https://mail.example.com/a b",
    ],
)
def test_a_base_url_that_links_could_not_use_as_they_are_is_refused(
    tmp_path: Path, base_url: str
) -> None:
    # Emails write their links with no HTML escaping (templates/email/_footer.mjml.j2).
    with pytest.raises(ConfigurationError, match="NURTURE_BASE_URL"):
        _development(tmp_path, base_url=base_url)


def test_a_base_url_with_a_path_and_port_is_accepted(tmp_path: Path) -> None:
    url = "https://practice.example:8443/mail-links"
    assert _development(tmp_path, base_url=url + "/").base_url == url
