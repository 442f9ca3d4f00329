"""What every studio page shares: headers, the page frame, and the files as they are.

The studio edits the files on disk, so its pages read them fresh (they are small):
:func:`files` gives the catalogue as far as it reads, with ``nurture check``'s problems.
The catalogue *in service* may be older when the files on disk fail the check; every
page then says so in a banner (:func:`render` puts ``service`` in the context).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from nurture.campaigns import check
from nurture.campaigns.loader import read_catalogue
from nurture.campaigns.model import Catalogue
from nurture.campaigns.problems import Problem, Problems
from nurture.runtime import reload
from nurture.runtime.services import Services
from nurture.settings import Settings
from nurture.web.studio.auth import Session
from nurture.web.templating import get_templates

#: A campaign, step or newsletter slug as it may appear in a studio address.
SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")

#: The studio runs its own script and styles only; emails in the preview frames (srcdoc)
#: inherit this policy: their inline styles are allowed, scripts are not.
HEADERS = {
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' https: data:; connect-src 'self'; form-action 'self'; "
        "frame-src 'self'; base-uri 'none'; frame-ancestors 'self'"
    ),
}


@dataclass(frozen=True)
class Files:
    """The campaign files as they read now, and what ``check`` says about them."""

    catalogue: Catalogue
    problems: list[Problem]

    def problems_in(self, path: Path) -> list[Problem]:
        return [p for p in self.problems if p.path == str(path)]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def settings_of(request: Request) -> Settings:
    return services_of(request).settings


def files(settings: Settings) -> Files:
    """The files on disk: everything that reads, with every problem ``check`` finds."""
    problems = check.check(settings)
    catalogue = read_catalogue(settings, Problems())
    return Files(catalogue, problems)


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    session: Session,
    status: int = 200,
    section: str = "",
) -> Response:
    """A studio page: ``templates/web/studio/<template>`` with the frame's context."""
    services = services_of(request)
    state = reload.source(services).state
    frame = {
        "session": session,
        "csrf": session.csrf,
        "section": section,
        "service": state,
        "local": lambda moment: local_time(moment, services.settings),
    }
    return get_templates(services.settings).TemplateResponse(
        request, f"studio/{template}", {**frame, **context}, status_code=status, headers=HEADERS
    )


def local_time(moment: datetime | None, settings: Settings) -> str:
    """``Tue 8 Dec 2026, 09:00`` in the practice's time zone (``""`` for ``None``)."""
    if moment is None:
        return ""
    local = moment.astimezone(settings.zone)
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M}"


def delay_words(delay: timedelta) -> str:
    """``2 days``, ``36 hours``, ``at once``: a delay as a person says it."""
    seconds = int(delay.total_seconds())
    if seconds <= 0:
        return "at once"
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds // 60} minutes"


def day_of(delays: list[timedelta]) -> list[str]:
    """For each step, roughly when it goes out: ``day 0``, ``day 2``, ``day 3.5``."""
    total = timedelta(0)
    out = []
    for delay in delays:
        total += delay
        days = total.total_seconds() / 86400
        out.append(f"day {days:g}" if days == int(days) else f"day {days:.1f}")
    return out


def body_line_of(problem: Problem, body_line: int) -> int | None:
    """The line of the body a problem points at (1-based), or ``None`` for the front matter."""
    return problem.line - body_line + 1 if problem.line >= body_line else None
