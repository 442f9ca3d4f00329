"""The exceptions nurture raises.

Everything that can go wrong while doing the work derives from :class:`NurtureError`
and carries its context (campaign, file and line, provider response). Configuration
problems derive from :class:`ConfigurationError`, which is deliberately *not* a
``NurtureError``: retry loops catch ``NurtureError`` and must never swallow a broken
setting. An exception with nothing to add uses its docstring as its message.
"""

from __future__ import annotations

from typing import Any


class NurtureError(Exception):
    """Something went wrong in nurture."""

    def __init__(self, message: str | None = None, **context: Any) -> None:
        self.message = message or (self.__doc__ or "").strip().splitlines()[0]
        self.context = context
        super().__init__(self.message)


class ConfigurationError(Exception):
    """A setting or deployment file is wrong; fix the configuration and restart."""


class CampaignError(NurtureError):
    """A campaign file is invalid."""

    def __init__(self, message: str, *, path: str, line: int = 1) -> None:
        super().__init__(message, path=path, line=line)
        self.path = path
        self.line = line

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class RenderError(NurtureError):
    """An email could not be rendered."""


class TokenError(NurtureError):
    """The link is not valid."""


class TokenExpired(TokenError):
    """The link has expired."""


class DeliveryError(NurtureError):
    """The provider did not accept the message.

    ``retryable`` says whether trying again later may succeed (5xx, timeouts, 429);
    ``retry_after`` is the earliest moment worth trying again, in seconds, when the
    provider said so.
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
        response: str | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message, status=status, **context)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        self.response = response


class WebhookError(NurtureError):
    """A webhook request failed verification."""


class SubscriptionError(NurtureError):
    """The subscription request cannot be accepted."""
