"""Helpers shared by the test modules; no test module imports another.

One section per kind of test that needs them: the subscriber's path in the core,
end-to-end delivery flows (real core objects, an injected clock), queued newsletters,
a real SMTP server on loopback, the web app over real HTTP, and the CLI in a subprocess.
Fixtures live in ``conftest.py``; the provider contract in
``tests/integration/providers_contract.py``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, insert, select
from starlette.types import ASGIApp

from nurture.campaigns import load_catalogue
from nurture.mail.messages import Batch
from nurture.mail.tokens import Tokens
from nurture.providers.base import Provider
from nurture.runtime.services import Services, build_services
from nurture.settings import Settings, load_settings
from nurture.store import outbox as outbox_ops
from nurture.store import steps
from nurture.store.schema import metadata, outbox, subscribers
from nurture.subscriptions import SignUpRequest, Subscriptions
from nurture.testing import FakeClock
from tests.integration.providers_contract import Mail, mail_from_mime

ROOT = Path(__file__).resolve().parent.parent


# The subscriber's path in the core -------------------------------------------------------

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
CAMPAIGN = "what-i-actually-do"
OTHER = "beginning-therapy"
#: The consent version the settings fixture uses (the shipped default).
CONSENT_VERSION = str(Settings.model_fields["consent_version"].default)


def make_service(settings: Settings, engine: Engine) -> Subscriptions:
    return Subscriptions(settings, engine, Tokens.from_settings(settings), load_catalogue(settings))


def request(email: str = "jane@example.com", **changes: Any) -> SignUpRequest:
    values: dict[str, Any] = {
        "email": email,
        "campaign": CAMPAIGN,
        "consent": True,
        "first_name": "Jane",
        "timezone": "Europe/Berlin",
        "form_url": "https://www.example-practice.com/articles/what-i-actually-do",
        "ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0 (test)",
        "channel": "form",
        "consent_version": CONSENT_VERSION,
    }
    values.update(changes)
    return SignUpRequest(**values)


def rows(engine: Engine, table: Any, *where: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(table).where(*where).order_by(*table.primary_key)))


def subscriber(engine: Engine, email: str = "jane@example.com") -> Any:
    found = rows(engine, subscribers, subscribers.c.email == email)
    return found[0] if found else None


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table: compare before and after to prove nothing changed.

    The sign-up rate limit's counts (PostgreSQL) are left out: counting a request is
    what the limit is for, and they hold nothing about anyone.
    """
    with engine.connect() as conn:
        return {
            t.name: sorted(
                (tuple(r) for r in conn.execute(select(t))), key=lambda r: tuple(map(str, r))
            )
            for t in metadata.sorted_tables
            if t.name != "rate_limit_hits"
        }


def add_outbox(engine: Engine, subscriber_id: int, step: str, status: str, **extra: Any) -> int:
    values = {
        "subscriber_id": subscriber_id,
        "kind": "sequence",
        "campaign": CAMPAIGN,
        "step": step,
        "due_at": T0,
        "status": status,
        "attempts": 0,
        "created_at": T0,
        "updated_at": T0,
        **extra,
    }
    with engine.begin() as conn:
        values["step_id"] = steps.id_of(conn, values["campaign"], values["step"])
        return int(conn.execute(insert(outbox).values(values).returning(outbox.c.id)).scalar_one())


def confirmed(service: Subscriptions, email: str = "jane@example.com", now: datetime = T0) -> Any:
    """A confirmed, enrolled subscriber (signed up and confirmed at ``now``)."""
    service.sign_up(request(email), now=now)
    row = subscriber(service.engine, email)
    service.confirm(service.tokens.make("confirm", row.public_id, now=now), now=now)
    return subscriber(service.engine, email)


# End-to-end delivery flows: real core objects, an injected clock --------------------------


def services_for(
    settings: Settings, engine: Engine, clock: FakeClock, provider: Provider
) -> Services:
    return build_services(settings, clock=clock.now, provider=provider, engine=engine)


def confirm_url_of(batch: Batch) -> str:
    return batch.recipients[0].values["confirm_url"]


def token_of(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[1]


def subscribe_and_confirm(
    services: Services,
    clock: FakeClock,
    email: str,
    campaign: str,
    *,
    timezone: str | None = None,
    first_name: str | None = "Sam",
) -> int:
    """The real double opt-in: sign up, send the confirmation, confirm its link."""
    outbox_id = services.subscriptions.sign_up(
        SignUpRequest(
            email=email,
            campaign=campaign,
            consent=True,
            first_name=first_name,
            timezone=timezone,
            ip="192.0.2.1",
            user_agent="pytest",
        ),
        now=clock.now(),
    )
    assert outbox_id is not None
    services.dispatcher.send_now(outbox_id)
    with services.engine.connect() as conn:
        row = conn.execute(
            select(outbox.c.status, outbox.c.kind).where(outbox.c.id == outbox_id)
        ).one()
    assert (row.status, row.kind) == ("sent", "confirmation")
    url = last_value(services, email, "confirm_url")
    services.subscriptions.confirm(token_of(url), now=clock.now())
    with services.engine.connect() as conn:
        return int(
            conn.execute(select(subscribers.c.id).where(subscribers.c.email == email)).scalar_one()
        )


def last_value(services: Services, email: str, name: str) -> str:
    """The last value of placeholder ``name`` sent to ``email`` through a FakeProvider."""
    provider: Any = services.provider
    for batch in reversed(provider.batches):
        for recipient in batch.recipients:
            if recipient.email == email and name in recipient.values:
                return str(recipient.values[name])
    raise AssertionError(f"nothing with {name} was sent to that address")


def sends_to(services: Services, email: str) -> list[tuple[str, str, datetime | None]]:
    """(campaign, step, sent_at) of every marketing email sent to ``email``, in order."""
    with services.engine.connect() as conn:
        rows = conn.execute(
            select(outbox.c.campaign, outbox.c.step, outbox.c.sent_at)
            .join(subscribers, subscribers.c.id == outbox.c.subscriber_id)
            .where(
                subscribers.c.email == email,
                outbox.c.status == "sent",
                outbox.c.kind != "confirmation",
            )
            .order_by(outbox.c.sent_at, outbox.c.id)
        )
        return [(r.campaign, r.step, r.sent_at) for r in rows]


def add_confirmed(engine: Engine, count: int, *, at: datetime) -> list[int]:
    """``count`` confirmed subscribers (s0@example.org ...) wanting newsletters; their ids."""
    with engine.begin() as conn:
        conn.execute(
            subscribers.insert(),
            [
                {
                    "public_id": f"p{i}",
                    "email": f"s{i}@example.org",
                    "status": "confirmed",
                    "newsletters": True,
                    "created_at": at,
                    "confirmed_at": at,
                }
                for i in range(count)
            ],
        )
        return list(conn.execute(select(subscribers.c.id).order_by(subscribers.c.id)).scalars())


# Queued newsletters ----------------------------------------------------------------------

LETTER = "2026-12-08-winter-note"
NOW = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)  # 10:00 in London: inside the window


def queue_newsletter(engine: Engine, count: int, *, kind: str = "newsletter") -> list[str]:
    """``count`` confirmed subscribers, each with the newsletter queued and due now."""
    emails = [f"reader{i}@example.org" for i in range(count)]
    with engine.begin() as conn:
        conn.execute(
            subscribers.insert(),
            [
                {
                    "public_id": f"pub{i}",
                    "email": email,
                    "first_name": "Reader",
                    "status": "confirmed",
                    "newsletters": True,
                    "created_at": NOW - timedelta(days=30),
                    "confirmed_at": NOW - timedelta(days=30),
                }
                for i, email in enumerate(emails)
            ],
        )
        ids = list(conn.execute(select(subscribers.c.id).order_by(subscribers.c.id)).scalars())
        outbox_ops.enqueue(
            conn,
            [
                {"subscriber_id": i, "kind": "newsletter", "campaign": "newsletters",
                 "step": LETTER, "due_at": NOW}
                for i in ids
            ],
            now=NOW,
        )  # fmt: skip
    return emails


def statuses(engine: Engine) -> Counter[str]:
    with engine.connect() as conn:
        return Counter(conn.execute(select(outbox.c.status)).scalars())


# A real SMTP server (aiosmtpd) on loopback -----------------------------------------------


@dataclass
class Received:
    peer: tuple[str, int]
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class Collector:
    """An aiosmtpd handler keeping every message; refuses listed addresses and can hang up."""

    refuse: set[str] = field(default_factory=set)
    #: Answer 421 (closing) to the DATA of the message for this address.
    close_on: set[str] = field(default_factory=set)
    received: list[Received] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.close_on.intersection(envelope.rcpt_tos):
            return "421 4.3.2 Service shutting down"
        self.received.append(
            Received(session.peer, envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        )
        return "250 Message accepted for delivery"

    def mails(self) -> list[Mail]:
        return [mail_from_mime(r.data) for r in self.received]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_smtp(handler: Collector, **options: Any) -> Controller:
    """A started aiosmtpd server on a free loopback port; the caller stops it."""
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **options)
    controller.start()
    return controller


def smtp_settings(settings: Settings, port: int, **update: Any) -> Settings:
    values: dict[str, Any] = {
        "delivery": "smtp",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_starttls": False,
        "smtp_timeout": 5.0,
    }
    values.update(update)
    return settings.model_copy(update=values)


# The web app over real HTTP --------------------------------------------------------------


@contextmanager
def serve_app(app: ASGIApp, *, timeout: float = 10.0) -> Iterator[str]:
    """Runs ``app`` under uvicorn on ``127.0.0.1`` until the block ends; yields its URL.

    ``with serve_app(app) as base_url: httpx.get(base_url + "/healthz")``. The socket is
    bound before the server starts (port 0: the system picks a free one), so there is no
    race between choosing a port and listening on it.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # As ``nurture serve`` runs it: uvicorn's own X-Forwarded-For handling off, so the
    # app's TRUSTED_PROXIES rule is the only one.
    config = uvicorn.Config(
        app, lifespan="off", log_level="warning", access_log=False, proxy_headers=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


# The ``nurture`` command in a subprocess -------------------------------------------------


def run_cli(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m nurture ARGS`` in ``tmp_path``, with settings pointing into it."""
    return subprocess.run(
        [sys.executable, "-m", "nurture", *args],
        cwd=tmp_path,
        env=cli_env(tmp_path, env),
        input=stdin.decode() if stdin else None,
        capture_output=True,
        text=True,
        timeout=120,
    )


def cli_env(tmp_path: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NURTURE_")}
    env.update(
        NURTURE_VAR_DIR=str(tmp_path / "var"),
        NURTURE_CAMPAIGNS_DIR=str(ROOT / "campaigns"),
        NURTURE_TEMPLATES_DIR=str(ROOT / "templates"),
    )
    env.update(extra or {})
    return env


# Settings a production start-up accepts ---------------------------------------------------


def production_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Production settings that pass every start-up refusal; ``overrides`` break one."""
    values: dict[str, object] = {
        "env": "production",
        "var_dir": tmp_path / "var",
        "campaigns_dir": ROOT / "campaigns",
        "templates_dir": ROOT / "templates",
        "secret_keys": "a-production-key-that-is-long-enough-0123456789",
        "suppression_key": "a-suppression-key-that-is-long-enough-0123456789",
        "base_url": "https://practice.example.net",
        "from_email": "hello@practice.example.net",
        "postal_address": "Example Practice, 1 Test Street, Testville",
        "delivery": "sendgrid",
        "sendgrid_api_key": "SG.test",
        "_env_file": None,
    }
    return load_settings(**{**values, **overrides})
