"""The job schedule (nurture.runtime.schedule), the scheduler built from it, and its README."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import cast

from apscheduler.triggers.interval import IntervalTrigger

from nurture.runtime.schedule import ScheduledJob, schedule
from nurture.runtime.server import make_scheduler
from nurture.runtime.services import Services
from nurture.settings import Settings

README = Path(__file__).resolve().parents[2] / "scheduler" / "README.md"
_ROW = re.compile(r"^\| `(\w+)` \| (.+?) \| (.+?) \|$")


def _every(job: ScheduledJob) -> str:
    seconds = int(job.every.total_seconds())
    spoken = f"{seconds // 60} minutes" if seconds % 60 == 0 else f"{seconds} s"
    return f"`{job.setting}` ({spoken})" if job.setting else spoken


def test_readme_table_matches_the_schedule(settings: Settings) -> None:
    default_tick = Settings.model_fields["tick_seconds"].default
    defaults = settings.model_copy(update={"tick_seconds": default_tick})
    rows = [m.groups() for m in map(_ROW.match, README.read_text().splitlines()) if m]
    assert rows == [(job.name, _every(job), job.does) for job in schedule(defaults)]


def test_make_scheduler_adds_every_job(settings: Settings) -> None:
    services = cast(Services, SimpleNamespace(settings=settings))
    scheduler = make_scheduler(services)
    added = {job.id: job for job in scheduler.get_jobs()}
    for job in schedule(settings):
        trigger = added.pop(job.name).trigger
        assert isinstance(trigger, IntervalTrigger)
        assert trigger.interval == job.every
    assert not added
    assert schedule(settings)[0].every == timedelta(seconds=settings.tick_seconds)
