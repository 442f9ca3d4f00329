"""Kept-alive HTTP connections for the official SendGrid client.

``python_http_client`` (under ``sendgrid``) builds a new ``urllib`` opener for every
request, and urllib sends ``Connection: close``: each request of a newsletter pays a
new TCP connection (and, against the real API, a TLS handshake). :class:`KeepAliveClient`
is that same client with its request hook, ``Client._make_request`` (kept separate
upstream so that it can be replaced), sending over kept-alive connections instead,
each reused while it stays fresh, one at a time.

The errors are urllib's, so that callers tell the two failures apart as before: a
failure while connecting or writing the request raises :class:`urllib.error.URLError`
(the request did not arrive whole); one while waiting for or reading the answer raises
``OSError`` or ``http.client.HTTPException`` (the request may have been accepted). An
answer outside 2xx raises the client's own ``HTTPError`` for that status. When a proxy
is configured in the environment, requests take the client's stock urllib path.
"""

from __future__ import annotations

import http.client
import select
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import python_http_client
from python_http_client import exceptions

#: A connection idle for longer is not reused: a server may close an idle connection
#: at any moment, and a request written into one just closed has an unknown fate.
MAX_IDLE_SECONDS = 5.0


class _Answer:
    """A response read whole, with what ``python_http_client.Response`` asks of one."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: bytes, headers: Any) -> None:
        self.status, self.body, self.headers = status, body, headers

    def getcode(self) -> int:
        return self.status

    def read(self) -> bytes:
        return self.body

    def info(self) -> Any:
        return self.headers


class _Connections:
    """Idle kept-alive connections, shared by threads: each request takes one (or opens
    one) and gives it back once the answer was read whole."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[tuple[str, http.client.HTTPConnection, float]] = []

    def open(self, request: urllib.request.Request, timeout: float | None) -> _Answer:
        parts = urllib.parse.urlsplit(request.full_url)
        origin = f"{parts.scheme}://{parts.netloc}"
        conn = self._take(origin)
        if conn is None:
            kind = (
                http.client.HTTPSConnection
                if parts.scheme == "https"
                else http.client.HTTPConnection
            )
            conn = kind(parts.netloc, timeout=timeout)
        else:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            try:
                conn.request(
                    request.get_method(), target, request.data, dict(request.header_items())
                )
            except OSError as exc:  # connecting or writing: the request did not arrive whole
                raise urllib.error.URLError(exc) from exc
            response = conn.getresponse()
            body = response.read()
        except BaseException:
            conn.close()
            raise
        if response.will_close:
            conn.close()
        else:
            with self._lock:
                self._idle.append((origin, conn, time.monotonic()))
        if not 200 <= response.status < 300:
            error = exceptions.err_dict.get(response.status, exceptions.HTTPError)
            raise error(response.status, response.reason, body, response.msg)
        return _Answer(response.status, body, response.msg)

    def _take(self, origin: str) -> http.client.HTTPConnection | None:
        """The most recently used idle connection to ``origin`` still fit for reuse."""
        found = None
        stale = []
        now = time.monotonic()
        with self._lock:
            for i in range(len(self._idle) - 1, -1, -1):
                at, conn, used = self._idle[i]
                if now - used > MAX_IDLE_SECONDS:
                    stale.append(self._idle.pop(i)[1])
                elif found is None and at == origin:
                    found = self._idle.pop(i)[1]
        for conn in stale:
            conn.close()
        if found is not None and _dropped(found):
            found.close()
            return None
        return found


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """Whether the server closed an idle connection (it is readable: EOF or stray data)."""
    if conn.sock is None:
        return True
    try:
        readable, _, _ = select.select([conn.sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class KeepAliveClient(python_http_client.Client):
    """``python_http_client.Client`` whose requests reuse kept-alive connections.

    Every client built from it along a URL (``client.mail.send``) shares its connections.
    """

    def __init__(self, *args: Any, connections: _Connections | None = None, **kwargs: Any) -> None:
        # Set before the base's __init__: the client answers unknown attributes with
        # new URL segments, so this must never be missing.
        self.__dict__["_connections"] = connections or _Connections()
        super().__init__(*args, **kwargs)

    def _build_client(self, name: str | None = None) -> KeepAliveClient:
        url_path = [*self._url_path, name] if name else self._url_path
        return KeepAliveClient(
            host=self.host,
            version=self._version,
            request_headers=self.request_headers,
            url_path=url_path,
            append_slash=self.append_slash,
            timeout=self.timeout,
            connections=self._connections,
        )

    def _make_request(
        self, opener: Any, request: urllib.request.Request, timeout: float | None = None
    ) -> Any:
        scheme = urllib.parse.urlsplit(request.full_url).scheme
        if scheme in urllib.request.getproxies():
            return super()._make_request(opener, request, timeout=timeout)
        return self._connections.open(request, timeout or self.timeout)


def keep_alive(client: python_http_client.Client) -> KeepAliveClient:
    """The same client (host, headers, version, timeout), on kept-alive connections."""
    return KeepAliveClient(
        host=client.host,
        request_headers=client.request_headers,
        version=client._version,
        url_path=client._url_path,
        append_slash=client.append_slash,
        timeout=client.timeout,
    )
