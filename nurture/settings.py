"""The one typed settings object, read from ``NURTURE_*`` variables and ``.env``.

Settings are read once at start-up (:func:`load_settings`) and passed down; nothing
else in nurture reads the environment. A bad value stops start-up with a message that
names the setting.
"""

from __future__ import annotations

import re
import secrets
from datetime import time
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from nurture.exceptions import ConfigurationError

#: What BASE_URL may not hold: HTML's special characters, a query, a fragment, a backslash.
_UNSAFE_IN_BASE_URL = frozenset("\"'<>&?#\\")
_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")

#: Words that would expose the topic on a lock screen or a shared inbox. An entry ending
#: in ``*`` matches every word starting with it; others match the whole word (and plural).
DEFAULT_DISCRETION_WORDS: tuple[str, ...] = (
    "sex*", "therap*", "erect*", "orgasm*", "libido*", "desir*", "arous*", "intima*",
    "porn*", "kink*", "fetish*", "affair*", "infidel*", "trauma*", "abus*", "shame*",
    "impoten*", "vagin*", "penis*", "genital*", "std", "sti", "hiv", "pleasur*",
    "bedroom*", "naked", "nude*", "lust*", "climax*", "condom*", "viagra", "libid*",
)  # fmt: skip


#: Shipped safety wording, in the therapist's voice; localise with ``NURTURE_CRISIS_LINE``
#: and ``NURTURE_REPLY_POLICY`` (the country's emergency number, who reads replies).
DEFAULT_CRISIS_LINE = (
    "This inbox is not watched for emergencies. If you are in danger, or might harm "
    "yourself or someone else, call your local emergency number (999 or 112 in the UK) "
    "or go to your nearest emergency department now."
)
DEFAULT_REPLY_POLICY = (
    "I read every reply myself, usually within a few working days. A reply from me "
    "is not therapy and can't stand in for care from a clinician."
)


def parse_window(value: str) -> tuple[time, time]:
    """``"08:00-20:00"`` -> ``(time(8), time(20))``; raises ``ValueError`` when malformed."""
    match = _WINDOW.match(value)
    if not match:
        raise ValueError(f"expected HH:MM-HH:MM, got {value!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = time(h1, m1), time(h2 % 24, m2) if (h2, m2) != (24, 0) else time(23, 59, 59)
    if end <= start:
        raise ValueError(f"the window must end after it starts, got {value!r}")
    return start, end


def _csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every setting nurture reads. Environment names are ``NURTURE_`` + the upper-case name."""

    model_config = SettingsConfigDict(
        env_prefix="NURTURE_", env_file=".env", extra="ignore", validate_default=True
    )

    env: Literal["development", "test", "production"] = "development"
    var_dir: Path = Path("var")
    database_url: str = ""  # empty: SQLite at VAR_DIR/nurture.db
    campaigns_dir: Path = Path("campaigns")
    templates_dir: Path = Path("templates")

    # Delivery
    delivery: Literal["folder", "sendgrid", "smtp", "console"] = "folder"
    mail_dir: Path | None = None  # default VAR_DIR/mail
    sendgrid_api_key: SecretStr | None = None
    sendgrid_host: str = "https://api.sendgrid.com"
    sendgrid_webhook_public_key: str | None = None
    sendgrid_sandbox: bool = False
    sendgrid_timeout: float = Field(30.0, gt=0)
    smtp_host: str = "localhost"
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_ssl: bool = False
    smtp_timeout: float = Field(30.0, gt=0)
    max_send_rate: float = Field(0.0, ge=0)  # emails per second; 0 = no limit
    # In production, folder or console delivery only with this set (a staging copy).
    allow_local_delivery: bool = False
    tracking: bool = False
    # Aggregate, person-free link counts: body links go through BASE_URL/l/{id}.
    link_counts: bool = True

    # Identity and links
    secret_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    # Hashes the suppression list; never rotated (else: the oldest of SECRET_KEYS).
    suppression_key: SecretStr | None = None
    base_url: str = "http://127.0.0.1:8000"
    from_email: str = "hello@example-practice.com"
    from_name: str = "Alex Morgan"
    reply_to: str | None = None
    postal_address: str = ""
    practice_name: str = "Example Practice"
    therapist_name: str = "Alex Morgan"
    site_url: str = "https://www.example-practice.com"
    booking_url: str = "https://www.example-practice.com/consultation"
    test_recipient: str | None = None  # default target of `nurture send-test`

    # What the emails promise: safety, replies and the first step (bodies and footers)
    crisis_line: str = DEFAULT_CRISIS_LINE  # every marketing email and the confirmation
    reply_policy: str = DEFAULT_REPLY_POLICY  # beside every invitation to reply
    # A noun phrase that fits "you can book ...": what the practice really offers first.
    consultation_offer: str = "a first appointment"

    # Timing
    timezone: str = "Europe/London"
    send_window: str = "08:00-20:00"
    tick_seconds: int = Field(30, ge=1)
    dispatch_batch_size: int = Field(1000, ge=1, le=1000)
    dispatch_workers: int = Field(2, ge=1, le=16)
    lease_seconds: int = Field(300, ge=10)
    retry_base_seconds: float = Field(30.0, gt=0)
    retry_give_up_hours: float = Field(48.0, gt=0)
    unknown_reconcile_minutes: int = Field(1440, ge=1)
    # With webhook traffic flowing: how long after later requests' events an unknown
    # request may stay silent before it is taken as never accepted and sent again.
    unknown_event_grace_minutes: int = Field(10, ge=1)

    # Subscribers
    confirm_token_days: int = Field(7, ge=1)
    unsubscribe_token_days: int = Field(400, ge=60)
    check_deliverability: bool = False
    subscribe_rate_limit: int = Field(10, ge=1)  # POSTs per IP per window
    subscribe_rate_window_seconds: int = Field(600, ge=1)
    ip_retention_days: int = Field(30, ge=0)
    # Outbox rows older than this are folded into per-step daily counts, then deleted.
    retention_sent_days: int = Field(400, ge=1)
    # Then an unsubscribed (or bounced, or complaining) person's data is erased.
    retention_unsubscribed_days: int = Field(30, ge=1)
    consent_wording: str = (
        "Yes, please email me this article's follow-up series and occasional newsletters. "
        "I can unsubscribe at any time with one click."
    )
    consent_version: str = "2026-11-v1"
    discretion_words: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_DISCRETION_WORDS)
    )

    # Web and operations
    preview_username: str | None = None
    preview_password: SecretStr | None = None
    # The therapist's studio (/studio): her login; no hash = closed in production.
    studio_username: str = "therapist"
    studio_password_hash: SecretStr | None = None
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # SHA-256 hashes of the keys for /api/... (`nurture api-key new`), comma-separated.
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # With `serve --no-web`: the port that process serves /metrics on (empty: none).
    metrics_port: int | None = Field(None, ge=1, le=65535)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    # One line per request, client address masked and tokens cut from the path.
    access_log: bool = False
    # The domain of the List-Unsubscribe mailto address (default: FROM_EMAIL's).
    unsubscribe_mail_domain: str | None = None

    @field_validator("api_keys")
    @classmethod
    def _hashed_keys(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not re.fullmatch(r"sha256:[0-9a-fA-F]{64}", entry.strip()):
                raise ValueError(
                    "each entry is a key's hash, 'sha256:' and 64 hex digits: make one with "
                    "`nurture api-key new` (the key itself is never stored)"
                )
        return [entry.strip().lower() for entry in value]

    @field_validator(
        "secret_keys", "discretion_words", "trusted_proxies", "api_keys", mode="before"
    )
    @classmethod
    def _split_csv(cls, value: object) -> object:
        return _csv(value)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("send_window")
    @classmethod
    def _window(cls, value: str) -> str:
        parse_window(value)
        return value

    @field_validator("base_url", "site_url", "booking_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("base_url")
    @classmethod
    def _links_base(cls, value: str) -> str:
        # Every link in an email is BASE_URL, a path and a URL-safe token: with none of
        # these characters it needs no HTML escaping (the templates write those links
        # with the plain placeholder: one substitution per link per recipient, not
        # two), and no query or fragment swallows the path appended to it.
        unsafe = sorted({ch for ch in value if ch in _UNSAFE_IN_BASE_URL or ch.isspace()})
        if unsafe:
            shown = " ".join(repr(ch) for ch in unsafe)
            raise ValueError(
                "must be a plain address such as https://mail.example.com, with no query,"
                f" fragment, quotes, '<', '>', '&' or spaces; found {shown}"
            )
        return value

    @field_validator("from_email", "reply_to", "test_recipient")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", value):
            raise ValueError("expected an email address")
        return value

    @field_validator("unsubscribe_mail_domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().lstrip("@").lower()
        if not re.match(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$", value):
            raise ValueError(f"expected a mail domain such as example.com, got {value!r}")
        return value

    @field_validator("from_name")
    @classmethod
    def _from_name(cls, value: str) -> str:
        # SendGrid refuses names holding ';' or ','; catch it at start-up, not at send time.
        if any(ch in value for ch in ";,\r\n"):
            raise ValueError("must not contain ';', ',' or line breaks")
        return value

    @model_validator(mode="after")
    def _timings_agree(self) -> Settings:
        """Timing settings that contradict each other open a way to send twice."""
        problems = []
        timeout, timeout_name = (
            (self.smtp_timeout, "SMTP_TIMEOUT")
            if self.delivery == "smtp"
            else (self.sendgrid_timeout, "SENDGRID_TIMEOUT")
        )
        # Connect, send and read are each bounded by the timeout: a request may take 3x.
        if self.delivery in ("sendgrid", "smtp") and self.lease_seconds < 3 * timeout:
            problems.append(
                f"NURTURE_LEASE_SECONDS ({self.lease_seconds}) must be at least 3 x "
                f"NURTURE_{timeout_name} ({timeout:g} s): a slow request would outlive its "
                "lease and its rows could be sent again"
            )
        if self.tick_seconds >= self.lease_seconds:
            problems.append(
                f"NURTURE_TICK_SECONDS ({self.tick_seconds}) must be below "
                f"NURTURE_LEASE_SECONDS ({self.lease_seconds})"
            )
        if self.unknown_reconcile_minutes * 60 <= self.lease_seconds:
            problems.append(
                f"NURTURE_UNKNOWN_RECONCILE_MINUTES ({self.unknown_reconcile_minutes}) must be "
                f"longer than NURTURE_LEASE_SECONDS ({self.lease_seconds} s)"
            )
        if self.unknown_event_grace_minutes >= self.unknown_reconcile_minutes:
            problems.append(
                f"NURTURE_UNKNOWN_EVENT_GRACE_MINUTES ({self.unknown_event_grace_minutes}) must "
                f"be below NURTURE_UNKNOWN_RECONCILE_MINUTES ({self.unknown_reconcile_minutes})"
            )
        if self.retry_give_up_hours * 3600 <= self.retry_base_seconds:
            problems.append(
                f"NURTURE_RETRY_GIVE_UP_HOURS ({self.retry_give_up_hours:g}) must be longer "
                f"than NURTURE_RETRY_BASE_SECONDS ({self.retry_base_seconds:g} s)"
            )
        if problems:
            raise ValueError("settings contradict each other: " + "; ".join(problems))
        return self

    @model_validator(mode="after")
    def _production_requirements(self) -> Settings:
        if self.env != "production":
            return self
        missing = [
            name
            for name, present in (
                ("SECRET_KEYS", bool(self.secret_keys)),
                (
                    "BASE_URL",
                    "127.0.0.1" not in self.base_url and "localhost" not in self.base_url,
                ),
                ("FROM_EMAIL", not self.from_email.endswith("@example-practice.com")),
                ("POSTAL_ADDRESS", bool(self.postal_address.strip())),
                # Emails invite disclosures: each must say where to turn in danger.
                ("CRISIS_LINE", bool(self.crisis_line.strip())),
                # Without it the suppression list is keyed by SECRET_KEYS and a rotation
                # would forget who unsubscribed.
                ("SUPPRESSION_KEY", self.suppression_key is not None),
            )
            if not present
        ]
        problems = []
        if missing:
            problems.append("required in production: " + ", ".join(f"NURTURE_{m}" for m in missing))
        short = [i for i, k in enumerate(self.secret_keys) if len(k.get_secret_value()) < 32]
        if short:
            # A short key is brute-forced from one token in a fraction of a second.
            problems.append(
                "NURTURE_SECRET_KEYS: every key must be at least 32 characters in production "
                f"(entry {', '.join(str(i + 1) for i in short)} is shorter)"
            )
        if not self.base_url.startswith("https://"):
            problems.append("NURTURE_BASE_URL must start with https:// in production")
        if self.delivery in ("folder", "console") and not self.allow_local_delivery:
            problems.append(
                f"NURTURE_DELIVERY={self.delivery} writes mail locally instead of sending it: "
                "choose sendgrid or smtp, or set NURTURE_ALLOW_LOCAL_DELIVERY=true"
            )
        if self.delivery == "sendgrid" and not self.sendgrid_api_key:
            problems.append("NURTURE_SENDGRID_API_KEY is required when DELIVERY=sendgrid")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # Derived values -------------------------------------------------------------

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.var_dir / 'nurture.db'}"

    @property
    def resolved_mail_dir(self) -> Path:
        return self.mail_dir or self.var_dir / "mail"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def window(self) -> tuple[time, time]:
        return parse_window(self.send_window)

    @property
    def postal_address_or_placeholder(self) -> str:
        return self.postal_address or "Example Practice, 1 Example Street, Example Town"

    @property
    def mail_domain(self) -> str:
        return self.from_email.rpartition("@")[2]

    @property
    def unsubscribe_domain(self) -> str:
        """The domain of ``mailto:unsubscribe+TOKEN@…``: where the practice receives it."""
        return self.unsubscribe_mail_domain or self.mail_domain

    def following_port(self, host: str, port: int) -> Settings:
        """In development, these settings with ``BASE_URL`` on ``port`` (``make run PORT=``).

        Only when ``BASE_URL`` was not set: a configured address is always kept, and
        outside development it never changes.
        """
        if self.env != "development" or "base_url" in self.model_fields_set:
            return self
        shown = host if host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        shown = f"[{shown}]" if ":" in shown else shown
        return self.model_copy(update={"base_url": f"http://{shown}:{port}"})

    def secret_key_values(self) -> list[str]:
        """The signing keys, newest first."""
        return [key.get_secret_value() for key in self.secret_keys]


def _development_secret(var_dir: Path) -> str:
    """A per-checkout secret for development, generated once and kept under ``var/``."""
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def load_settings(**overrides: object) -> Settings:
    """Reads and validates the settings; raises :class:`ConfigurationError` naming the setting."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = ".".join(str(p) for p in error["loc"]) or "settings"
            label = f"NURTURE_{name.upper()}" if error["loc"] else "settings"
            lines.append(f"{label}: {error['msg']}")
        raise ConfigurationError("invalid settings:\n  " + "\n  ".join(lines)) from None
    if not settings.secret_keys:
        settings.secret_keys = [SecretStr(_development_secret(settings.var_dir))]
    return settings
