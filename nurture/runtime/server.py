"""``nurture serve``: the web app and the scheduler in one long-lived process.

Either half can run alone (``--no-web``, ``--no-scheduler``) to scale out over one
PostgreSQL. SIGTERM (systemd's stop) and SIGINT stop the web server gracefully, tell
the dispatcher to finish the batch in flight, wait for the running job, and exit 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, timedelta
from types import FrameType

import uvicorn
from apscheduler.schedulers.background import BackgroundScheduler

from nurture.clock import utcnow
from nurture.runtime import jobs
from nurture.runtime.services import Services

log = logging.getLogger(__name__)
HOUSEKEEPING_MINUTES = 5


def make_scheduler(services: Services) -> BackgroundScheduler:
    """The job schedule. coalesce + max_instances=1: a slow pass is never run twice at once,
    and passes missed while one ran are folded into a single catch-up run."""
    scheduler = BackgroundScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
    )
    now = utcnow()
    # plan and dispatch are separate jobs, run side by side by the thread pool: a long
    # newsletter pass never holds up planning (nor the health check that watches it).
    for job, offset in ((jobs.plan, 0), (jobs.dispatch, 1)):
        scheduler.add_job(
            job,
            "interval",
            args=[services],
            seconds=services.settings.tick_seconds,
            id=job.__name__,
            next_run_time=now + timedelta(seconds=offset),
        )
    scheduler.add_job(
        jobs.housekeeping,
        "interval",
        args=[services],
        minutes=HOUSEKEEPING_MINUTES,
        id="housekeeping",
        next_run_time=now + timedelta(seconds=5),
    )
    return scheduler


def serve(
    services: Services, *, host: str, port: int, web: bool = True, scheduler: bool = True
) -> int:
    """Runs until SIGTERM/SIGINT; returns the exit status (0 after a clean stop)."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # uvicorn captures the signal while it runs and raises it again once it has
        # shut down; landing here then means "stop the rest too", not "die now".
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()
        services.dispatcher.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

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
