"""The subscriber's pages: sign up, confirm, unsubscribe (one-click too), preferences.

Each page lives in its own module (:mod:`~nurture.web.signup`, :mod:`~nurture.web.confirm`,
:mod:`~nurture.web.unsubscribe`, :mod:`~nurture.web.preferences`) with its handlers at
module level; they share :class:`nurture.web.pages.Pages` and read bodies through
:mod:`nurture.web.forms`. Rules every route here keeps:

* A GET never changes anything (mail scanners and link previews follow links); the
  pages behind email links carry one button that POSTs.
* Sign-up answers exactly the same for every address, known or not; the honeypot
  answers like a success and does nothing.
* No page shows an address; no cookie is ever set; token pages are ``no-store`` and
  ``no-referrer`` so the token in the URL is neither cached nor passed on.
* Malformed input (bad JSON, wrong content type, bad UTF-8, a body over 64 KB, missing
  or non-string fields) gets a 4xx page or JSON answer, never a 500.
* A forged, wrong-purpose or erased-subscriber token gets the friendly invalid-link
  page with 400, an expired one with 410; nothing changes.
* A POST to a valid unsubscribe link always unsubscribes, whatever its body: the body
  only tells an RFC 8058 one-click POST (or any other client) from the page's own form.
* Pages never show a first name: until confirmation it was typed by a stranger.

Database work runs in the thread pool; the confirmation email is handed to
``Dispatcher.send_now`` in a background task after the answer is sent (it is queued in
the outbox first, so a provider outage only delays it). "Now" is ``services.clock``.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from nurture.web import confirm, preferences, signup, unsubscribe


def routes() -> list[BaseRoute]:
    """Every subscriber route; they need ``app.state.pages`` (see :mod:`nurture.web.pages`)."""
    return [*signup.routes(), *confirm.routes(), *unsubscribe.routes(), *preferences.routes()]
