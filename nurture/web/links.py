"""``GET /l/{id}``: the first-party redirect behind aggregate link counts.

The id is signed and names a campaign, a step and a link (see
:mod:`nurture.mail.links`), never a person. A good id is counted once per request for
that link and day, and answered with a 302 to its target; anything else is a plain 404
that sends nobody anywhere. No cookie is set and nothing about the visitor is kept: not
the address, not the time of day, not the user agent.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from nurture.exceptions import TokenError
from nurture.mail.links import Link, LinkIds
from nurture.runtime.services import Services
from nurture.store import links as link_ops

log = logging.getLogger(__name__)

#: Set in the ASGI scope by a handler whose redirect goes to another site on purpose.
OFFSITE = "nurture.offsite_redirect"
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


async def follow(request: Request) -> Response:
    """302 to the link's target (counted), or 404 for a forged or unknown id."""
    services: Services = request.app.state.services
    ids: LinkIds = request.app.state.link_ids
    try:
        link = ids.read(request.path_params["link_id"])
    except TokenError:
        return PlainTextResponse("Not found\n", 404, headers=_HEADERS)
    # HEAD is what link checkers send; only a GET is someone following the link.
    if request.method == "GET" and services.settings.link_counts:
        try:
            await run_in_threadpool(_count, services, link)
        except Exception as exc:  # a lost count must never cost the reader the page
            log.warning(
                "link click not counted",
                extra={"action": "link.count", "error_type": type(exc).__name__},
            )
    # Our own security middleware points absolute redirects at BASE_URL's origin (a
    # forged Host header must not steer them); this one alone leaves the site on purpose.
    request.scope[OFFSITE] = True
    return RedirectResponse(link.target, 302, headers=_HEADERS)


def _count(services: Services, link: Link) -> None:
    with services.engine.begin() as conn:
        link_ops.count_click(
            conn,
            campaign=link.campaign,
            step=link.step,
            link=link.key,
            target=link.target,
            day=services.clock().date(),
        )


def routes() -> list[BaseRoute]:
    """``/l/{id}``; it needs ``app.state.link_ids`` (a :class:`LinkIds`)."""
    return [Route("/l/{link_id}", follow, methods=["GET"], name="link")]
