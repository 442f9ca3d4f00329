"""The wiring: every core object built once from the settings.

The CLI, the web app and the scheduler jobs receive a :class:`Services` and call the
core through it; the core modules never import this one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from nurture.campaigns import Catalogue
    from nurture.dispatch import Dispatcher
    from nurture.health import Health
    from nurture.providers.base import Provider
    from nurture.recipients import RecipientFactory
    from nurture.rendering import Renderer
    from nurture.settings import Settings
    from nurture.subscriptions import Subscriptions
    from nurture.tokens import Tokens


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
    extra: dict[str, object] = field(default_factory=dict)
