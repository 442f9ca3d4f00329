"""The Jinja2 environment for the web pages under ``templates/web/``.

Every web module renders through :func:`get_templates`, so all pages share one
environment with autoescaping always on (a subscriber's name or an email subject must
never become markup) and the practice's identity available as globals. Emails are
rendered elsewhere (:mod:`nurture.rendering`), with their own environments.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2
from starlette.templating import Jinja2Templates

from nurture.settings import Settings


def get_templates(settings: Settings) -> Jinja2Templates:
    """The shared templates for ``settings.templates_dir / "web"`` (built once per folder).

    Render with ``get_templates(settings).TemplateResponse(request, "name.html", context)``.
    Globals ``practice_name``, ``therapist_name``, ``site_url`` and ``booking_url`` are set.
    """
    return _templates(
        Path(settings.templates_dir).resolve() / "web",
        settings.practice_name,
        settings.therapist_name,
        settings.site_url,
        settings.booking_url,
    )


@lru_cache(maxsize=8)
def _templates(
    directory: Path, practice_name: str, therapist_name: str, site_url: str, booking_url: str
) -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        # Always on, whatever the file extension: every web template is HTML.
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        practice_name=practice_name,
        therapist_name=therapist_name,
        site_url=site_url,
        booking_url=booking_url,
    )
    return Jinja2Templates(env=env)
