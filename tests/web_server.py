"""Serve an ASGI app under uvicorn on loopback, in a thread, for tests over real HTTP.

``with serve_app(app) as base_url: httpx.get(base_url + "/healthz")``. The socket is
bound before the server starts (port 0: the system picks a free one), so there is no
race between choosing a port and listening on it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp


@contextmanager
def serve_app(app: ASGIApp, *, timeout: float = 10.0) -> Iterator[str]:
    """Runs ``app`` on ``127.0.0.1`` until the block ends; yields ``http://127.0.0.1:PORT``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # As ``nurture serve`` runs it: uvicorn's own X-Forwarded-For handling off, so the
    # app's TRUSTED_PROXIES rule is the only one.
    config = uvicorn.Config(
        app, lifespan="off", log_level="warning", access_log=False, proxy_headers=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
