"""Finding one subscriber in the studio, by exact address, and unsubscribing or erasing them.

The list of subscribers is itself sensitive (who reads a therapist's letters), so the
studio never shows it: there is no browsing, no search by part of an address, and an
address never travels in a URL (where logs, history and referrers would keep it).
``GET /studio/subscribers`` is an empty form; ``POST /studio/subscribers`` looks one
address up exactly (as ``nurture subscribers show`` does: :func:`gdpr.show`) and shows
status, sequences, consent trail and sends. ``POST …/unsubscribe`` and ``POST …/erase``
first answer a confirmation page; only its button (``confirm=yes``) acts. Nothing here
logs an address.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from nurture.campaigns.model import NEWSLETTERS, Catalogue
from nurture.exceptions import CampaignError
from nurture.store.statuses import OutboxKind
from nurture.subscriptions import gdpr
from nurture.web.studio import auth, views
from nurture.web.studio.auth import Session

#: What a consent record's action means, in words.
ACTIONS = {
    "opt_in": "Signed up",
    "confirm": "Confirmed",
    "withdraw": "Unsubscribed",
    "preferences": "Changed preferences",
    "import": "Imported",
    "erase": "Erased",
    "resubscribe": "Asked to come back",
}
#: An address is at most this long (RFC 5321); longer input is not looked up.
MAX_ADDRESS = 320
NOTICES = {
    "unsubscribe": "Unsubscribed. Their queued emails are cancelled and the address gets no "
    "more mail unless they sign up again and confirm.",
    "erase": "Erased. Only a keyed hash of the address stays on the suppression list, so it "
    "gets no mail unless they sign up again and confirm.",
}


def _address(fields: dict[str, str]) -> str:
    return " ".join(fields.get("email", "").split())[:MAX_ADDRESS]


@auth.login_required
async def lookup(request: Request, session: Session) -> Response:
    """``GET``: the lookup form; ``POST``: one subscriber, found by exact address."""
    if request.method == "GET":
        return _page(request, session, {"email": ""})
    fields = await auth.verified_form(request, session)
    email = _address(fields)
    if not email:
        context = {"email": "", "problem": "Type the subscriber's whole email address."}
        return _page(request, session, context, status=422)
    return _page(request, session, await _found(request, email))


@auth.login_required
async def unsubscribe(request: Request, session: Session) -> Response:
    """``POST …/unsubscribe``: a confirmation page; with ``confirm=yes``, unsubscribes."""
    return await _act(request, session, "unsubscribe")


@auth.login_required
async def erase(request: Request, session: Session) -> Response:
    """``POST …/erase``: a confirmation page; with ``confirm=yes``, erases."""
    return await _act(request, session, "erase")


async def _act(request: Request, session: Session, action: str) -> Response:
    fields = await auth.verified_form(request, session)
    email = _address(fields)
    context = await _found(request, email)
    if context["person"] is None and action == "unsubscribe":
        return _page(request, session, context, status=404)
    if fields.get("confirm") != "yes":
        return views.render(
            request,
            "subscriber_confirm.html",
            {**context, "action": action},
            session=session,
            section="subscribers",
        )
    services = views.services_of(request)
    now = services.clock()
    if action == "unsubscribe":
        await run_in_threadpool(
            services.subscriptions.unsubscribe_address, email, channel="studio", now=now
        )
    else:
        await run_in_threadpool(
            gdpr.erase, services.engine, services.settings, email, now, channel="studio"
        )
    context = await _found(request, email)
    return _page(request, session, {**context, "notice": NOTICES[action]})


def _page(
    request: Request, session: Session, context: dict[str, Any], status: int = 200
) -> Response:
    return views.render(
        request,
        "subscriber.html",
        {"looked_up": "person" in context, **context},
        session=session,
        status=status,
        section="subscribers",
    )


async def _found(request: Request, email: str) -> dict[str, Any]:
    services = views.services_of(request)
    data = await run_in_threadpool(gdpr.show, services.engine, services.settings, email)
    return {"email": email, **describe(data, services.catalogue)}


def describe(data: dict[str, Any] | None, catalogue: Catalogue) -> dict[str, Any]:
    """What :func:`gdpr.show` returns, ready for the page (names instead of slugs)."""
    if data is None:
        return {"person": None, "suppression": None}
    suppression = data["suppression"]
    if suppression:
        suppression = {**suppression, "since": _when(suppression["since"])}
    person = data["subscriber"]
    if person is None:
        return {"person": None, "suppression": suppression}
    return {
        "person": {
            **person,
            **{
                key: _when(person.get(key))
                for key in ("created_at", "confirmed_at", "unsubscribed_at", "paused_until")
            },
        },
        "sequences": [_sequence(e, catalogue) for e in data["enrolments"]],
        "consents": [
            {
                "when": _when(c["created_at"]),
                "action": ACTIONS.get(c["action"], c["action"]),
                "channel": c["channel"],
                "campaign": _campaign_name(catalogue, c.get("campaign")),
                "version": c.get("wording_version") or "",
                "form_url": c.get("form_url") or "",
            }
            for c in data["consents"]
        ],
        "sends": [_send(m, catalogue) for m in reversed(data["outbox"])],
        "suppression": suppression,
    }


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _campaign_name(catalogue: Catalogue, slug: str | None) -> str:
    if not slug:
        return ""
    campaign = catalogue.campaigns.get(slug)
    return campaign.name if campaign else slug


def _subject(catalogue: Catalogue, campaign: str, step: str) -> str:
    try:
        return catalogue.content_for(campaign, step).subject
    except CampaignError:  # a step or newsletter since removed from the files
        return step


def _sequence(enrolment: dict[str, Any], catalogue: Catalogue) -> dict[str, Any]:
    slug = enrolment["campaign"]
    campaign = catalogue.campaigns.get(slug)
    last = enrolment.get("last_step")
    return {
        "name": _campaign_name(catalogue, slug),
        "status": enrolment["status"],
        "had": enrolment["next_step"],
        "of": len(campaign.steps) if campaign else None,
        "last": _subject(catalogue, slug, last) if last else "",
        "next_due": _when(enrolment.get("next_due_at")),
        "enrolled": _when(enrolment.get("enrolled_at")),
    }


def _send(mail: dict[str, Any], catalogue: Catalogue) -> dict[str, Any]:
    campaign, step = mail.get("campaign") or "", mail.get("step") or ""
    if mail["kind"] == OutboxKind.CONFIRMATION:
        what = "Confirmation email"
    elif campaign == NEWSLETTERS:
        what = f"Newsletter: {_subject(catalogue, campaign, step)}"
    else:
        what = f"{_campaign_name(catalogue, campaign)}: {_subject(catalogue, campaign, step)}"
    return {
        "what": what,
        "status": mail["status"],
        "when": _when(mail.get("sent_at") or mail.get("due_at")),
    }
