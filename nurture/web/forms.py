"""Reading request bodies: the one size-capped body reader, and the form parsers over it.

Every route that reads a body goes through :func:`read_body`, so no request can make
the server buffer more than the route's limit, whatever ``Content-Length`` says.
The subscriber's pages then parse the body with :func:`read_fields` (form, multipart or
JSON); the webhook verifies the raw bytes as they came. Malformed input raises
:class:`BadInput` carrying the 4xx to answer with, never anything that becomes a 500.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from python_multipart.multipart import parse_options_header
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import Message

#: The largest body a subscriber's form may send.
MAX_FORM_BODY = 64 * 1024
#: The most fields a form may hold; more is not a form of ours.
MAX_FIELDS = 30
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
JSON = "application/json"
TOO_LARGE = "That was more than this form accepts."


class BodyTooLarge(Exception):
    """The request body is over the route's limit."""


class BadInput(Exception):
    """The request cannot be read; ``status`` is the 4xx to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, byte for byte; raises :class:`BodyTooLarge` past ``limit`` bytes.

    Checks ``Content-Length`` first and counts while streaming, so a lying or missing
    length cannot make the server buffer more than ``limit``.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    """The request's content type without parameters, lower case (``""`` when absent)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_fields(request: Request, *, allow_json: bool) -> tuple[dict[str, Any], str]:
    """The submitted fields and how they came (``form`` or ``json``); raises :class:`BadInput`.

    Form values are strings (the first of repeated names wins); JSON values are
    whatever the client sent, checked by the caller. An empty body without a content
    type reads as an empty form (a bare button POST).
    """
    try:
        body = await read_body(request, MAX_FORM_BODY)
    except BodyTooLarge:
        raise BadInput(413, TOO_LARGE) from None
    return await parse_fields(request, body, allow_json=allow_json)


async def parse_fields(
    request: Request, body: bytes, *, allow_json: bool
) -> tuple[dict[str, Any], str]:
    """:func:`read_fields` for a body already read."""
    media = media_type(request)
    if media == JSON or (allow_json and media.endswith("+json")):
        if not allow_json:
            raise BadInput(415, "This page accepts form submissions only.")
        try:
            data = json.loads(body.decode("utf-8"))
        except (ValueError, RecursionError):
            raise BadInput(400, "The JSON could not be read.") from None
        if not isinstance(data, dict):
            raise BadInput(400, "Expected a JSON object.")
        return data, "json"
    if media == FORM or (not media and not body):
        try:
            pairs = parse_qsl(
                body.decode("utf-8"),
                keep_blank_values=True,
                max_num_fields=MAX_FIELDS,
                errors="strict",
            )
        except (ValueError, UnicodeDecodeError):
            raise BadInput(400, "The form could not be read.") from None
        fields: dict[str, Any] = {}
        for name, value in pairs:
            fields.setdefault(name, value)
        return fields, "form"
    if media == MULTIPART:
        return await _multipart(request, body), "form"
    raise BadInput(415, "This kind of request is not accepted here.")


async def _multipart(request: Request, body: bytes) -> dict[str, Any]:
    _, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    # The parser accepts a body cut short; a complete one holds the close delimiter,
    # which an epilogue (ignored, RFC 2046) may follow.
    close = b"--" + boundary + b"--" if boundary else b""
    if not boundary or not (body.startswith(close) or b"\n" + close in body):
        raise BadInput(400, "The form could not be read.")
    try:
        form = await replayed(request, body).form(max_files=0, max_fields=MAX_FIELDS)
    except Exception:  # python-multipart and Starlette raise several types for bad input
        raise BadInput(400, "The form could not be read.") from None
    fields: dict[str, Any] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            raise BadInput(400, "Files are not accepted.")
        fields.setdefault(name, value)
    return fields


def text(fields: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    """Field ``name`` as text, ``None`` when empty; :class:`BadInput` when missing or not text."""
    value = fields.get(name)
    if value is None or value == "":
        if required:
            raise BadInput(400, f"The field {name!r} is missing.")
        return None
    if not isinstance(value, str):
        raise BadInput(400, f"The field {name!r} must be text.")
    return value


def checked(value: Any) -> bool:
    """Whether a checkbox (or a JSON ``true``) was ticked."""
    if value is True:
        return True
    return isinstance(value, str) and value.strip().lower() in ("yes", "on", "true", "1")


def replayed(request: Request, body: bytes) -> Request:
    """A request over ``body``, already read (and size-capped) from ``request``, so that
    Starlette's own parsers can read it once more."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, replay)
