"""Delivery providers: SendGrid, SMTP, a local folder, the console.

Providers receive fully rendered :class:`nurture.messages.Batch` objects and never
touch templates or the database. :func:`make_provider` picks one from the settings.
"""
