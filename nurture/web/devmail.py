"""``/dev/mail``: read what the ``folder`` delivery backend wrote, in development.

The routes exist only outside production and only when ``DELIVERY=folder``; anywhere
else the paths are simply unknown (404). A message is addressed by its file name,
which must match :data:`NAME` and name a file directly inside ``MAIL_DIR``, so no
request can read anything else on the disk.
"""

from __future__ import annotations

import heapq
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from nurture.runtime.services import Services
from nurture.settings import Settings
from nurture.web.errors import error_response
from nurture.web.templating import get_templates

#: The only file names served.
NAME = re.compile(r"^[A-Za-z0-9._-]+\.eml$")
#: How many messages the list shows (newest first); a folder can hold thousands.
LIST_LIMIT = 200
#: Enough of a file to hold its headers, for the list.
_HEAD_BYTES = 64 * 1024
_PARSER = BytesParser(policy=policy.default)


@dataclass(frozen=True)
class MailSummary:
    """One line of the list."""

    name: str
    subject: str
    to: str
    date: str
    modified: datetime


def enabled(services: Services) -> bool:
    """Whether ``/dev/mail`` exists for these settings."""
    settings = services.settings
    return settings.env != "production" and settings.delivery == "folder"


def list_messages(folder: Path, limit: int = LIST_LIMIT) -> list[MailSummary]:
    """The newest ``limit`` ``.eml`` files in ``folder``, newest first."""
    if not folder.is_dir():
        return []
    files: list[tuple[float, str]] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if NAME.match(entry.name) and entry.is_file(follow_symlinks=False):
                try:
                    files.append((entry.stat().st_mtime, entry.name))
                except OSError:  # removed while listing
                    continue
    summaries = []
    for mtime, name in heapq.nlargest(limit, files):
        try:
            with open(folder / name, "rb") as fp:
                head = _PARSER.parsebytes(fp.read(_HEAD_BYTES), headersonly=True)
        except OSError:  # removed since the folder was listed
            continue
        summaries.append(
            MailSummary(
                name=name,
                subject=str(head.get("Subject", "")),
                to=str(head.get("To", "")),
                date=str(head.get("Date", "")),
                modified=datetime.fromtimestamp(mtime, UTC),
            )
        )
    return summaries


def message_path(folder: Path, name: str) -> Path | None:
    """The file for ``name`` when it is a valid name of a file inside ``folder``."""
    if not NAME.match(name):
        return None
    root = folder.resolve()
    path = (root / name).resolve()
    # resolve() follows symlinks: a link pointing out of the folder is refused here.
    if path.parent != root or not path.is_file():
        return None
    return path


def read_message(path: Path) -> EmailMessage:
    """The parsed message (``email.policy.default``, so parts decode to ``str``)."""
    with open(path, "rb") as fp:
        message = _PARSER.parse(fp)
    assert isinstance(message, EmailMessage)
    return message


def _part(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return ""
    content = part.get_content()
    return content if isinstance(content, str) else ""


def mail_list(request: Request) -> Response:
    """``GET /dev/mail``: the newest messages in the mail folder."""
    settings = _settings(request)
    folder = settings.resolved_mail_dir
    return get_templates(settings).TemplateResponse(
        request,
        "operator/mail_list.html",
        {"messages": list_messages(folder), "folder": str(folder), "limit": LIST_LIMIT},
        headers={"Cache-Control": "no-store"},
    )


def mail_message(request: Request) -> Response:
    """``GET /dev/mail/{name}``: one message, its headers, text and HTML."""
    settings = _settings(request)
    path = message_path(settings.resolved_mail_dir, request.path_params["name"])
    try:
        message = read_message(path) if path else None
    except OSError:  # removed since it was found
        message = None
    if path is None or message is None:
        return error_response(request, 404)
    return get_templates(settings).TemplateResponse(
        request,
        "operator/mail_message.html",
        {
            "name": path.name,
            "subject": str(message.get("Subject", "")),
            "headers": [(key, str(value)) for key, value in message.items()],
            "text": _part(message, "plain"),
            "html": _part(message, "html"),
        },
        headers={"Cache-Control": "no-store"},
    )


def _settings(request: Request) -> Settings:
    services: Services = request.app.state.services
    return services.settings


def routes(services: Services) -> list[BaseRoute]:
    """The ``/dev/mail`` routes, or none at all when not :func:`enabled`."""
    if not enabled(services):
        return []
    return [
        Route("/dev/mail", mail_list, methods=["GET"], name="dev_mail"),
        Route("/dev/mail/{name}", mail_message, methods=["GET"], name="dev_mail_message"),
    ]
