"""``POST …/test``: send the saved email to the therapist's own address, now.

The address is ``TEST_RECIPIENT`` unless she types another. The email goes through the
real delivery backend with ``[TEST]`` before its subject, and its links work for a test
reader who never joins the list (:mod:`nurture.delivery.trial`). The page that follows
names the address it went to, in full: it is hers.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from nurture.campaigns import NEWSLETTERS
from nurture.delivery.trial import send_trial
from nurture.exceptions import NurtureError
from nurture.providers.base import Outcome, SendResult
from nurture.subscriptions.validation import normalise_address
from nurture.web.errors import error_response
from nurture.web.studio import auth, views
from nurture.web.studio.auth import Session
from nurture.web.studio.editor import SLUG, locate


@auth.login_required
async def send(request: Request, session: Session) -> Response:
    """Sends the saved step (or newsletter) to the address in ``to``."""
    services = views.services_of(request)
    settings = services.settings
    fields = await auth.verified_form(request, session)
    found = await run_in_threadpool(views.files, settings)
    params = request.path_params
    if "slug" in params:
        campaign, step = NEWSLETTERS, params["slug"]
        if not SLUG.match(step) or step not in found.catalogue.newsletters:
            return error_response(request, 404)
        back = f"/studio/newsletters/{step}"
        subject = found.catalogue.newsletters[step].subject
    else:
        where = locate(found.catalogue, params["campaign"], params["step"])
        if where is None:
            return error_response(request, 404)
        campaign, step = params["campaign"], params["step"]
        back = f"/studio/campaigns/{campaign}/{step}"
        subject = where[0].step(step).subject
    typed = (fields.get("to") or settings.test_recipient or "").strip()
    context = {"back": back, "subject": subject, "to": typed, "ok": False, "problem": None}
    try:
        address = normalise_address(typed, check_deliverability=False)
    except NurtureError:
        context["problem"] = "Type the address to send the test to (yours)."
        return views.render(request, "tested.html", context, session=session, status=422)
    context["to"] = address
    try:

        def send() -> list[SendResult]:
            with services.dispatcher.provider_turn():
                return send_trial(
                    settings,
                    found.catalogue,
                    services.provider,
                    campaign,
                    step,
                    address,
                    now=services.clock(),
                )

        results = await run_in_threadpool(send)
    except NurtureError as exc:
        context["problem"] = f"The email could not be sent: {exc.message}"
        return views.render(request, "tested.html", context, session=session, status=422)
    failed = [r for r in results if r.outcome != Outcome.SENT]
    if failed:
        context["problem"] = (
            f"The delivery service did not take it: {failed[0].error or 'no reason given'}"
        )
        return views.render(request, "tested.html", context, session=session, status=502)
    context["ok"] = True
    return views.render(request, "tested.html", context, session=session)
