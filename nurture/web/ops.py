"""The operator's endpoints: ``GET /healthz`` and ``GET /metrics``.

Both read the database, so both are plain functions that Starlette runs in its thread
pool rather than on the event loop.
"""

from __future__ import annotations

import logging

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from nurture import metrics
from nurture.runtime import reload
from nurture.runtime.services import Services

logger = logging.getLogger(__name__)

_NO_STORE = {"Cache-Control": "no-store"}


def healthz(request: Request) -> Response:
    """200 ``{"status": "ok", ...}`` when healthy, 503 ``"unhealthy"`` when not."""
    services: Services = request.app.state.services
    healthy, detail = services.health.status()
    body = {"status": "ok" if healthy else "unhealthy", **detail}
    # A broken edit keeps the last good campaigns in service: healthy, but say so.
    body["campaigns"] = reload.status(services)
    return JSONResponse(body, 200 if healthy else 503, headers=_NO_STORE)


def metrics_endpoint(request: Request) -> Response:
    """The Prometheus text exposition of :data:`nurture.metrics.registry`."""
    try:
        payload = generate_latest(metrics.registry)
    except Exception as exc:  # the queue gauges read the database at scrape time
        logger.warning(
            "metrics unavailable: %s",
            type(exc).__name__,
            extra={"action": "web.metrics", "error_type": type(exc).__name__},
        )
        return PlainTextResponse("metrics unavailable\n", 503, headers=_NO_STORE)
    return Response(payload, headers={"Content-Type": CONTENT_TYPE_LATEST, **_NO_STORE})


def routes() -> list[BaseRoute]:
    """``/healthz`` and ``/metrics``; they read ``app.state.services``."""
    return [
        Route("/healthz", healthz, methods=["GET"], name="healthz"),
        Route("/metrics", metrics_endpoint, methods=["GET"], name="metrics"),
    ]
