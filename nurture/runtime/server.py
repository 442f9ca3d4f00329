"""``nurture serve``: the web app and the scheduler in one long-lived process.

Either half can run alone (``--no-web``, ``--no-scheduler``) to scale out over one
PostgreSQL. SIGTERM (systemd's stop) and SIGINT stop the web server gracefully, tell
the dispatcher to finish the batch in flight, wait for the running job, and exit 0.
"""

from __future__ import annotations

import logging
from datetime import UTC

import uvicorn
from apscheduler.schedulers.background import BackgroundScheduler

from nurture.clock import utcnow
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

    sched = make_scheduler(services) if scheduler else None
    if sched:
        sched.start()
        log.info("scheduler started", extra={"tick_seconds": services.settings.tick_seconds})
    try:
        if web:
            from nurture.web.app import create_app

            config = uvicorn.Config(
                create_app(services),
                host=host,
                port=port,
                log_config=None,
                access_log=False,  # access logs would carry tokens in paths
                proxy_headers=False,
                timeout_graceful_shutdown=10,
            )
            server = uvicorn.Server(config)
            # A stop that came while the app was being built: uvicorn never saw it.
            signals.on_stop(lambda: setattr(server, "should_exit", True))
            log.info("web listening", extra={"host": host, "port": port})
            server.run()
        else:
            stop.wait()
    finally:
        services.dispatcher.request_stop()
        if sched:
            sched.shutdown(wait=True)  # the batch in flight finishes first
        services.engine.dispose()
        log.info("stopped")
    return 0
