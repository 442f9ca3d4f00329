"""The pages behind a test email's links: what a reader would see, and nothing changes.

A test send (the studio's, or ``nurture send-test``) carries real, signed unsubscribe
and preference links for :data:`~nurture.delivery.trial.TRIAL_PUBLIC_ID`, a reader who
never joins the list. Those links open the real pages with a note saying so; pressing
their buttons shows the page a reader would see next, and changes nothing.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from nurture.delivery.trial import TRIAL_PUBLIC_ID
from nurture.exceptions import TokenError
from nurture.subscriptions import preferences as prefs
from nurture.web.pages import PAGE_HEADERS, Pages

NOTE = (
    "This page belongs to a test email. It looks just as a reader would see it, "
    "and nothing you do here changes anything."
)


def is_trial(pages: Pages, purpose: str, token: str) -> bool:
    """Whether ``token`` is a valid link of the test reader."""
    try:
        return pages.services.tokens.read(purpose, token, now=pages.now()) == TRIAL_PUBLIC_ID  # type: ignore[arg-type]
    except TokenError:
        return False


def unsubscribed(pages: Pages, request: Request, token: str, *, own_form: bool) -> Response:
    """The answer to unsubscribing the test reader: nothing happens."""
    if not own_form:
        return PlainTextResponse("This was a test email: nothing changed.", headers=PAGE_HEADERS)
    context = {"undo_url": f"/unsubscribe/{token}/undo", "trial_note": NOTE}
    return pages.render(request, "unsubscribed.html", context)


def preferences(pages: Pages, request: Request, *, posted: bool) -> Response:
    """The preference centre as a reader in every sequence would see it."""
    sequences = tuple(
        prefs.SequenceChoice(c.slug, c.name) for c in pages.services.catalogue.campaigns.values()
    )
    view = prefs.Preferences(None, "confirmed", True, None, sequences)
    notice = "Test email: nothing was changed." if posted else None
    context = {
        "prefs": view,
        "paused": False,
        "paused_until": None,
        "notice": notice,
        "error": None,
        "trial_note": NOTE,
    }
    return pages.render(request, "preferences.html", context)
