"""The studio's door: who may come in, the session cookie, and CSRF tokens.

Three ways the studio can stand (:func:`mode`):

- ``STUDIO_PASSWORD_HASH`` set (an argon2id hash from ``nurture studio password``): a
  login form for ``STUDIO_USERNAME`` and that password;
- no hash, production: closed; every ``/studio`` address answers 404;
- no hash, development or test: open to loopback clients only (a request that came
  through a proxy, carrying ``X-Forwarded-For`` or ``Forwarded``, is not loopback). The
  login page then has one button, so even then every form carries a session and a
  CSRF token.

The session is a cookie signed with ``SECRET_KEYS`` (itsdangerous; the newest key
signs, every key verifies), HttpOnly, ``SameSite=Strict``, ``Path=/studio``, ``Secure``
when ``BASE_URL`` is https, valid for :data:`SESSION_HOURS`. It names the user and a
fingerprint of the password hash, so changing the password ends every session.

Every state-changing form carries ``csrf_token``: an HMAC of the session's random id.
The login form, before any session exists, is bound the same way to a short-lived
signed cookie of its own. A POST without a valid token is answered 403 and changes
nothing. Failed logins go through the app's :class:`~nurture.web.ratelimit.FailureLock`
(per client address): slower after three, locked after ten in fifteen minutes.

Use in a handler::

    async def page(request: Request) -> Response:
        session = auth.require_login(request)
        if isinstance(session, Response):
            return session                       # 404, or a redirect to the login
        fields = await auth.verified_form(request, session)   # POST: raises Forbidden
        ...

or decorate it with :func:`login_required`, which does both and answers 403 for a bad
token. Templates get the token as ``session.csrf``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps
from typing import Literal
from urllib.parse import parse_qsl, quote

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from nurture.runtime.services import Services
from nurture.settings import Settings
from nurture.web.errors import error_response
from nurture.web.forms import BodyTooLarge, read_body
from nurture.web.pages import Pages
from nurture.web.ratelimit import FailureLock, rate_key

Mode = Literal["password", "open", "closed"]

COOKIE = "nurture_studio"
LOGIN_COOKIE = "nurture_studio_login"
PATH = "/studio"
SESSION_HOURS = 12
#: How long the login form may stay open before it must be reloaded.
LOGIN_FORM_SECONDS = 3600
#: The largest studio form (an email body with room to spare).
MAX_BODY = 512 * 1024
MAX_FIELDS = 60

_HASHER = PasswordHasher()  # argon2id, the library's current recommended parameters


class Forbidden(Exception):
    """A POST without a valid CSRF token (answered 403; nothing changed)."""


@dataclass(frozen=True)
class Session:
    """A logged-in visitor; ``csrf`` goes into every form as ``csrf_token``."""

    username: str
    sid: str
    csrf: str


def hash_password(password: str) -> str:
    """The argon2id hash to put in ``STUDIO_PASSWORD_HASH``."""
    return _HASHER.hash(password)


def mode(settings: Settings) -> Mode:
    """How the studio stands with these settings (see the module's docstring)."""
    if (
        settings.studio_password_hash is not None
        and settings.studio_password_hash.get_secret_value()
    ):
        return "password"
    return "closed" if settings.env == "production" else "open"


def is_loopback(request: Request) -> bool:
    """Whether the client is this machine itself, directly (not through a proxy)."""
    if "x-forwarded-for" in request.headers or "forwarded" in request.headers:
        return False
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def available(request: Request) -> bool:
    """Whether this request may see the studio at all (else: 404)."""
    current = mode(_settings(request))
    return current == "password" or (current == "open" and is_loopback(request))


def current_session(request: Request) -> Session | None:
    """The valid session of the request's cookie, or ``None``."""
    settings = _settings(request)
    raw = request.cookies.get(COOKIE)
    if not raw or not available(request):
        return None
    try:
        data = _serializer(settings, "studio-session").loads(raw, max_age=SESSION_HOURS * 3600)
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("k") != _door_key(settings):
        return None
    username, sid = data.get("u"), data.get("s")
    if username != _expected_user(settings) or not isinstance(sid, str) or len(sid) < 16:
        return None
    return Session(username, sid, _csrf_for(settings, sid))


def require_login(request: Request) -> Session | Response:
    """The session, or the answer to give instead: 404 when the studio is closed to this
    request, a redirect to the login page (GET) or 403 (anything else) without a session."""
    if not available(request):
        return error_response(request, 404)
    session = current_session(request)
    if session is not None:
        return session
    if request.method in ("GET", "HEAD"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{PATH}/login?next={quote(target, safe='/')}", 303)
    return error_response(request, 403)


async def read_form(request: Request) -> dict[str, str]:
    """The posted form (urlencoded), first value of each name; raises :class:`Forbidden`
    for a body that is not a form we could have sent."""
    try:
        body = await read_body(request, MAX_BODY)
    except BodyTooLarge:
        raise Forbidden from None
    if request.headers.get("content-type", "").split(";")[0].strip().lower() not in (
        "application/x-www-form-urlencoded",
        "",
    ):
        raise Forbidden
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            max_num_fields=MAX_FIELDS,
            strict_parsing=False,
        )
    except (ValueError, UnicodeDecodeError):
        raise Forbidden from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


async def verified_form(request: Request, session: Session) -> dict[str, str]:
    """The posted form once its ``csrf_token`` matches the session; raises :class:`Forbidden`."""
    fields = await read_form(request)
    if not hmac.compare_digest(fields.get("csrf_token", "").encode(), session.csrf.encode()):
        raise Forbidden
    return fields


Handler = Callable[[Request, Session], Awaitable[Response]]


def login_required(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wraps ``handler(request, session)``: login checked, :class:`Forbidden` -> 403."""

    @wraps(handler)
    async def endpoint(request: Request) -> Response:
        session = require_login(request)
        if isinstance(session, Response):
            return session
        try:
            return await handler(request, session)
        except Forbidden:
            return forbidden(request)

    return endpoint


def forbidden(request: Request) -> Response:
    """The 403 for a form without a valid token (an expired page, or another site)."""
    return error_response(
        request,
        403,
        "This form has expired or did not come from the studio. Reload the page and try again.",
    )


# -- the session cookie ------------------------------------------------------------------


def start_session(response: Response, request: Request) -> None:
    """Sets a fresh session cookie on ``response`` (after a good login)."""
    settings = _settings(request)
    payload = {
        "u": _expected_user(settings),
        "s": secrets.token_urlsafe(18),
        "k": _door_key(settings),
    }
    response.set_cookie(
        COOKIE,
        _serializer(settings, "studio-session").dumps(payload),
        max_age=SESSION_HOURS * 3600,
        path=PATH,
        secure=_secure(settings),
        httponly=True,
        samesite="strict",
    )
    response.delete_cookie(LOGIN_COOKIE, path=f"{PATH}/login")


def end_session(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path=PATH, secure=_secure(_settings(request)), httponly=True, samesite="strict"
    )


def new_login_form(request: Request) -> tuple[str, str]:
    """A fresh login form's ``(csrf_token, cookie)``: set the cookie with
    :func:`bind_login_form` on the response that shows the form."""
    settings = _settings(request)
    nonce = secrets.token_urlsafe(18)
    cookie = _serializer(settings, "studio-login").dumps(nonce)
    return _csrf_for(settings, "login:" + nonce), cookie


def bind_login_form(response: Response, request: Request, cookie: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        cookie,
        max_age=LOGIN_FORM_SECONDS,
        path=f"{PATH}/login",
        secure=_secure(_settings(request)),
        httponly=True,
        samesite="strict",
    )


def login_token_ok(request: Request, token: str) -> bool:
    """Whether ``token`` is the one the login form was given with its cookie."""
    settings = _settings(request)
    raw = request.cookies.get(LOGIN_COOKIE, "")
    try:
        nonce = _serializer(settings, "studio-login").loads(raw, max_age=LOGIN_FORM_SECONDS)
    except BadSignature:
        return False
    if not isinstance(nonce, str):
        return False
    return hmac.compare_digest(token.encode(), _csrf_for(settings, "login:" + nonce).encode())


# -- checking a password, with the lock --------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """The outcome of a login attempt: ``ok``, or ``locked_for`` seconds, or wrong."""

    ok: bool
    locked_for: int | None = None


async def attempt(request: Request, username: str, password: str) -> Attempt:
    """Checks a login (slowing and locking repeated failures per client address)."""
    settings = _settings(request)
    failures: FailureLock = request.app.state.login_failures
    client = "studio:" + rate_key(Pages.of(request).client_ip(request))
    wait = failures.locked(client)
    if wait is not None:
        return Attempt(False, wait)  # locked: the password is not even checked
    if mode(settings) == "open":
        return Attempt(True)
    user_ok = hmac.compare_digest(username.encode(), settings.studio_username.encode())
    password_ok = await run_in_threadpool(_verify, settings, password)
    if user_ok and password_ok:
        failures.succeeded(client)
        return Attempt(True)
    await asyncio.sleep(failures.failed(client))
    return Attempt(False, failures.locked(client))


def _verify(settings: Settings, password: str) -> bool:
    stored = (
        settings.studio_password_hash.get_secret_value() if settings.studio_password_hash else ""
    )
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


# -- helpers -----------------------------------------------------------------------------


def _settings(request: Request) -> Settings:
    services: Services = request.app.state.services
    return services.settings


def _serializer(settings: Settings, salt: str) -> URLSafeTimedSerializer:
    # itsdangerous signs with the last key and verifies with all: ours are newest first.
    keys = list(reversed(settings.secret_key_values()))
    return URLSafeTimedSerializer(keys, salt=f"nurture-{salt}")


def _csrf_for(settings: Settings, sid: str) -> str:
    key = settings.secret_key_values()[0].encode()
    return hmac.new(key, f"studio-csrf:{sid}".encode(), hashlib.sha256).hexdigest()[:40]


def _door_key(settings: Settings) -> str:
    """Changes when the password (or the studio's mode) changes: ends old sessions."""
    if mode(settings) == "open":
        return "open"
    stored = (
        settings.studio_password_hash.get_secret_value() if settings.studio_password_hash else ""
    )
    return hashlib.sha256(stored.encode()).hexdigest()[:16]


def _expected_user(settings: Settings) -> str:
    return settings.studio_username if mode(settings) == "password" else "development"


def _secure(settings: Settings) -> bool:
    return settings.base_url.startswith("https://")
