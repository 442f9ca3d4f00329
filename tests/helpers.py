"""Helpers for end-to-end flow tests: real core objects, an injected clock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from nurture.mail.messages import Batch
from nurture.providers.base import Provider
from nurture.runtime.services import Services, build_services
from nurture.settings import Settings
from nurture.store.schema import outbox, subscribers
from nurture.subscriptions import SignUpRequest
from nurture.testing import FakeClock


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
