"""The studio's dashboard (``GET /studio/``) and its numbers (``GET /studio/api/stats``).

Both read :func:`nurture.store.stats.read`, as ``nurture stats`` does, so the page,
the JSON and the terminal always agree. Everything shown is a count over many people:
no name or address appears, and nothing here follows a reader.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from nurture.campaigns.model import Catalogue
from nurture.runtime.services import Services
from nurture.store import stats
from nurture.web.studio import auth, charts, views

_NO_STORE = {"Cache-Control": "no-store"}
#: "Needs a look" from this many emails due but not sent, or failed and unknown together.
QUEUE_BACKLOG = 1000
TROUBLE = 25


def numbers(services: Services) -> dict[str, Any]:
    """The figures, as ``/studio/api/stats`` returns them."""
    return stats.read(services.engine, services.catalogue, now=services.clock())


@auth.login_required
async def dashboard(request: Request, session: auth.Session) -> Response:
    """``GET /studio/``: the figures, readable at a glance."""
    services = views.services_of(request)
    data = await run_in_threadpool(numbers, services)
    context = page_context(data, services.catalogue, services.settings.zone)
    return views.render(request, "dashboard.html", context, session=session, section="dashboard")


@auth.login_required
async def api_stats(request: Request, session: auth.Session) -> Response:
    """``GET /studio/api/stats``: the same figures as JSON (DESIGN.md's shape and more)."""
    data = await run_in_threadpool(numbers, views.services_of(request))
    return JSONResponse(data, headers=_NO_STORE)


def page_context(data: dict[str, Any], catalogue: Catalogue, zone: Any) -> dict[str, Any]:
    """What the template shows, derived from the figures only (plus titles from the files)."""
    weeks = data["weeks"]
    this_week, last_week = weeks[-1], weeks[-2]
    queue = data["queue"]
    return {
        "people": data["subscribers"],
        "this_week": this_week,
        "last_week": last_week,
        "weeks": weeks,
        "weekly_chart": charts.weekly_bars(
            weeks,
            label=(
                f"Sign-ups, confirmations and unsubscribes per week, last {len(weeks)} weeks; "
                "the numbers are in the table that follows"
            ),
        ),
        "series": charts.SERIES,
        "sequences": [_sequence(slug, c, catalogue) for slug, c in data["campaigns"].items()],
        "newsletters": _newsletters(data["newsletters"], catalogue, zone),
        "queue": queue,
        # A few bounced addresses a month are normal; a backlog or many failures are not.
        "queue_ok": queue["due"] < QUEUE_BACKLOG and queue["failed"] + queue["unknown"] < TROUBLE,
        "generated_at": datetime.fromisoformat(data["generated_at"]),
    }


def _sequence(slug: str, figures: dict[str, Any], catalogue: Catalogue) -> dict[str, Any]:
    campaign = catalogue.campaigns.get(slug)
    subjects = {s.slug: s.subject for s in campaign.steps} if campaign else {}
    steps = figures["steps"]
    peak = max((s["sent"] for s in steps), default=0)
    rows = []
    for number, step in enumerate(steps, 1):
        title = subjects.get(step["step"], step["step"])
        rows.append(
            {
                "number": number,
                "title": title,
                "slug": step["step"],
                "sent": step["sent"],
                "stopped": step["stopped_after"],
                "clicks": step["clicks"],
                "booked": step["booked_after"],
                "bar": charts.bar(
                    step["sent"], peak, "#2f5d62", label=f"Email {number}: {step['sent']} reached"
                ),
            }
        )
    first = steps[0]["sent"] if steps else 0
    last = steps[-1]["sent"] if steps else 0
    return {
        "slug": slug,
        "name": campaign.name if campaign else slug,
        "rows": rows,
        "started": first,
        "finished": last,
        "left": sum(s["stopped_after"] for s in steps) + figures["stopped_before_first"],
        "clicks": sum(s["clicks"] for s in steps),
        # Bookings are counted only where the sequence stops on them.
        "goals": bool(figures["booked"]) or bool(campaign and "booked" in campaign.stop_when),
        "booked": figures["booked"],
        "booked_before_first": figures["booked_before_first"],
    }


def _newsletters(figures: dict[str, Any], catalogue: Catalogue, zone: Any) -> list[dict[str, Any]]:
    rows = []
    for slug, n in figures.items():
        letter = catalogue.newsletters.get(slug)
        sent_at = datetime.fromisoformat(n["sent_at"]) if n["sent_at"] else None
        scheduled = sent_at is None and letter is not None
        when = sent_at or (letter.send_at if letter else None)
        rows.append(
            {
                "slug": slug,
                "subject": letter.subject if letter else slug,
                "date": (
                    ("scheduled for " if scheduled else "") + f"{when.astimezone(zone):%-d %b %Y}"
                )
                if when
                else "",
                "order": when.isoformat() if when else "",
                "scheduled": scheduled,
                "sent": n["sent"],
                "clicks": n["clicks"],
                "unsubscribes": n["unsubscribes_7d"],
            }
        )
    rows.sort(key=lambda r: r["order"], reverse=True)
    return rows


def routes() -> list[BaseRoute]:
    """``/studio/`` and ``/studio/api/stats``, both behind the studio's login."""
    return [
        Route("/studio/", dashboard, methods=["GET"], name="studio_dashboard"),
        Route("/studio/api/stats", api_stats, methods=["GET"], name="studio_api_stats"),
    ]
