"""Prometheus metrics, one registry per process.

Counters are incremented where the work happens (dispatch, webhooks); gauges that
describe the database (queue depth) are read at scrape time by :class:`QueueCollector`,
so every process reports the shared truth rather than its own slice of it.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from nurture.store import database
from nurture.store import stats as stats_ops

registry = CollectorRegistry(auto_describe=True)

sends = Counter(
    "nurture_sends_total",
    "Outbox rows that reached a final or retry state in this process, by state.",
    ["state", "reason"],
    registry=registry,
)
provider_errors = Counter(
    "nurture_provider_errors_total",
    "Provider answers that were not a success, by provider and kind of error.",
    ["provider", "error"],
    registry=registry,
)
# The name predates the split of a tick into plan and dispatch jobs; it stays, since
# dashboards and the README name it. Planning is timed in job_runs (/healthz) instead.
tick_duration = Histogram(
    "nurture_tick_duration_seconds",
    "Duration of one dispatch pass (sending what is due; planning not included).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=registry,
)
webhook_events = Counter(
    "nurture_webhook_events_total",
    "Provider webhook events received, by kind and whether they were new.",
    ["kind", "applied"],
    registry=registry,
)


class QueueCollector(Collector):
    """Reports outbox rows by status straight from the database at scrape time.

    A database that cannot be read is reported as ``nurture_database_up 0`` rather
    than failing the whole scrape: the other metrics stay visible when it matters most.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("nurture_database_up", "1 when the database answered the scrape.")
        family = GaugeMetricFamily(
            "nurture_outbox_rows",
            "Outbox rows by status (queued = queue depth).",
            labels=["status"],
        )
        try:
            with database.reading(self.engine) as conn:
                counts = stats_ops.sends_by_state(conn)
        except Exception:  # any database failure: report it as a value, not an error
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        for status, count in counts.items():
            family.add_metric([status], count)
        yield up
        yield family


def watch_queue(engine: Engine) -> None:
    """Reports ``engine``'s queue from now on (one collector per process, re-pointed)."""
    for collector in list(registry._collector_to_names):
        if isinstance(collector, QueueCollector):
            collector.engine = engine
            return
    registry.register(QueueCollector(engine))
