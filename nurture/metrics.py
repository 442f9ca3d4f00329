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
from sqlalchemy import Engine, func, select

from nurture.store.schema import outbox

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
tick_duration = Histogram(
    "nurture_tick_duration_seconds",
    "Duration of one scheduler pass (plan + dispatch).",
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
    """Reports outbox rows by status straight from the database at scrape time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "nurture_outbox_rows",
            "Outbox rows by status (queued = queue depth).",
            labels=["status"],
        )
        with self.engine.connect() as conn:
            for status, count in conn.execute(
                select(outbox.c.status, func.count()).group_by(outbox.c.status)
            ):
                family.add_metric([status], count)
        yield family


def watch_queue(engine: Engine) -> None:
    """Registers the queue collector for ``engine`` (once per process)."""
    if not any(isinstance(c, QueueCollector) for c in list(registry._collector_to_names)):
        registry.register(QueueCollector(engine))
