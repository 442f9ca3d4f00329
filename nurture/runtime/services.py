"""The wiring: every core object built once from the settings.

The CLI, the web app and the scheduler jobs receive a :class:`Services` and call the
core through it; the core modules never import this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nurture.clock import Clock, utcnow

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from nurture.campaigns import Catalogue
    from nurture.campaigns.reload import CatalogueSource
    from nurture.delivery.dispatch import Dispatcher
    from nurture.delivery.events import DeliveryEvents
    from nurture.mail.recipients import RecipientFactory
    from nurture.mail.tokens import Tokens
    from nurture.providers.base import Provider
    from nurture.rendering import Renderer
    from nurture.runtime.health import Health
    from nurture.settings import Settings
    from nurture.subscriptions import Subscriptions


@dataclass
class Services:
    """Everything the outer layers need, built by :func:`build_services`."""

    settings: Settings
    engine: Engine
    catalogue: Catalogue
    renderer: Renderer
    tokens: Tokens
    recipients: RecipientFactory
    provider: Provider
    subscriptions: Subscriptions
    dispatcher: Dispatcher
    health: Health
    delivery_events: DeliveryEvents
    #: "Now" for every caller of the core: the real clock unless a test or ``tick --at`` moves it.
    clock: Clock
    #: Keeps ``catalogue`` in step with the files (see :mod:`nurture.runtime.reload`).
    catalogue_source: CatalogueSource | None = None


def build_services(
    settings: Settings,
    *,
    clock: Clock = utcnow,
    provider: Provider | None = None,
    engine: Engine | None = None,
) -> Services:
    """Builds every core object once. Loading the campaigns here means a broken file
    stops start-up with its ``path:line: message`` instead of failing mid-send."""
    from nurture.campaigns import load_catalogue
    from nurture.campaigns.reload import CatalogueSource
    from nurture.delivery.dispatch import Dispatcher
    from nurture.delivery.events import DeliveryEvents
    from nurture.mail.recipients import RecipientFactory
    from nurture.mail.tokens import Tokens
    from nurture.providers import make_provider
    from nurture.rendering import Renderer
    from nurture.runtime.health import Health
    from nurture.store import database
    from nurture.subscriptions import Subscriptions

    engine = engine or database.make_engine(settings.resolved_database_url)
    catalogue = load_catalogue(settings)
    renderer = Renderer(settings, catalogue)
    tokens = Tokens.from_settings(settings)
    recipients = RecipientFactory(settings, tokens)
    provider = provider or make_provider(settings)
    subscriptions = Subscriptions(settings, engine, tokens, catalogue)
    dispatcher = Dispatcher(
        engine, settings, catalogue, renderer, recipients, provider, clock=clock
    )
    return Services(
        settings=settings,
        engine=engine,
        catalogue=catalogue,
        renderer=renderer,
        tokens=tokens,
        recipients=recipients,
        provider=provider,
        subscriptions=subscriptions,
        dispatcher=dispatcher,
        health=Health(engine, settings.tick_seconds, clock()),
        delivery_events=DeliveryEvents(engine, settings, catalogue, subscriptions),
        clock=clock,
        catalogue_source=CatalogueSource(settings, catalogue, clock=clock),
    )
