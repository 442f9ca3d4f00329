"""``nurture serve``: the web app and the scheduler in one long-lived process.

Either half can run alone (``--no-web``, ``--no-scheduler``) to scale out over one
PostgreSQL. SIGTERM (systemd's stop) and SIGINT stop the web server gracefully, tell
the dispatcher to finish the batch in flight, wait for the running job, and exit 0.
"""

from __future__ import annotations

import errno
import logging
import socket
from datetime import UTC

import uvicorn
from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import start_http_server

from nurture import metrics
from nurture.clock import utcnow
from nurture.exceptions import ConfigurationError
from nurture.runtime import reload
from nurture.runtime.schedule import JOB_DEFAULTS, schedule
from nurture.runtime.services import Services
from nurture.runtime.signals import StopSignals

log = logging.getLogger(__name__)


def make_scheduler(services: Services) -> BackgroundScheduler:
    """An APScheduler running the jobs of :func:`nurture.runtime.schedule.schedule`."""
    scheduler = BackgroundScheduler(timezone=UTC, job_defaults=JOB_DEFAULTS)
    now = utcnow()
    for job in schedule(services.settings):
        scheduler.add_job(
            job.run,
            "interval",
            args=[services],
            seconds=job.every.total_seconds(),
            id=job.name,
            next_run_time=now + job.first_after,
        )
    return scheduler


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything starts.

    Raises :class:`ConfigurationError` with one line saying how to choose another port
    when this one is taken (rather than uvicorn's message, after the scheduler started).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigurationError(
                f"port {port} on {host} is already in use: choose another with "
                f"`make run PORT={port + 1}` or `nurture serve --port {port + 1}`"
            ) from None
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def serve(
    services: Services,
    *,
    host: str,
    port: int,
    web: bool = True,
    scheduler: bool = True,
    signals: StopSignals | None = None,
) -> int:
    """Runs until SIGTERM/SIGINT; returns the exit status (0 after a clean stop).

    ``signals`` were installed when the command started: a stop that arrived during
    start-up ends the service here, before it serves anything.
    """
    signals = signals or StopSignals().install()
    signals.on_stop(services.dispatcher.request_stop)
    if signals.stopped:
        services.engine.dispose()
        log.info("stopped before starting")
        return 0
    stop = signals.event

    sock = bind(host, port) if web else None
    sched = make_scheduler(services) if scheduler else None
    if sched:
        sched.start()
        log.info("scheduler started", extra={"tick_seconds": services.settings.tick_seconds})
    # The web half's own look at the campaign files (the jobs look before every pass).
    watcher = reload.Watcher(services).start() if web else None
    if not web and services.settings.metrics_port:
        # A scheduler-only process has no web app to serve /metrics: its own listener.
        metrics.watch_queue(services.engine)
        start_http_server(services.settings.metrics_port, addr=host, registry=metrics.registry)
        log.info("metrics listening", extra={"host": host, "port": services.settings.metrics_port})
    try:
        if web:
            from nurture.web.app import create_app

            config = uvicorn.Config(
                create_app(services),
                host=host,
                port=port,
                log_config=None,
                # uvicorn's access log would carry tokens in paths; ACCESS_LOG is ours.
                access_log=False,
                proxy_headers=False,
                timeout_graceful_shutdown=10,
            )
            server = uvicorn.Server(config)
            # A stop that came while the app was being built: uvicorn never saw it.
            signals.on_stop(lambda: setattr(server, "should_exit", True))
            log.info("web listening", extra={"host": host, "port": port})
            server.run(sockets=[sock] if sock else None)
        else:
            stop.wait()
    finally:
        if watcher:
            watcher.stop()
        if sock:
            sock.close()
        services.dispatcher.request_stop()
        if sched:
            sched.shutdown(wait=True)  # the batch in flight finishes first
        services.engine.dispose()
        log.info("stopped")
    return 0
