"""Delivery providers: SendGrid, SMTP, a local folder, the console.

Providers receive fully rendered :class:`nurture.mail.messages.Batch` objects and never
touch templates or the database. :func:`make_provider` picks one from the settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nurture.providers.base import Provider
    from nurture.settings import Settings


def make_provider(settings: Settings) -> Provider:
    """The provider ``settings.delivery`` names, configured from ``settings``.

    Raises :class:`nurture.exceptions.ConfigurationError` when its settings are missing
    (``sendgrid`` without an API key).
    """
    # Imported here so that importing the package does not load every client library.
    if settings.delivery == "sendgrid":
        from nurture.providers.sendgrid import SendGridProvider

        return SendGridProvider(settings)
    if settings.delivery == "smtp":
        from nurture.providers.smtp import SMTPProvider

        return SMTPProvider(settings)
    if settings.delivery == "console":
        from nurture.providers.console import ConsoleProvider

        return ConsoleProvider()
    from nurture.providers.folder import FolderProvider

    return FolderProvider(settings)
