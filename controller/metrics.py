"""Prometheus metrics of the cluster, kept in Redis and exported by the controller.

Runs start and finish on workers, so the counters and histograms of runs live
in Redis, where every worker and the controller can add to them atomically;
node and queue figures are read from the registry and the queues when
Prometheus scrapes ``/metrics``. Nothing here is kept in a process's memory,
so a restarted controller loses no count.

Keys: ``metrics:runs`` (hash ``<event>|<queue>`` -> count), and one hash per
histogram and queue, ``metrics:hist:<name>:<queue>`` (``sum``, ``count`` and,
per bucket bound, the observations that fell in that bucket and no lower one;
the collector adds them up into Prometheus's cumulative buckets), and
``metrics:node:<id>`` (the last run's telemetry summary).

The writers take a client or a pipeline, so that a worker sends everything it
records at the start or the end of a run in one round trip.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from controller.queues import queue_figures
from controller.registry import Registry, text
from controller.tiers import tier_model

__all__ = [
    "BUCKETS",
    "ClusterCollector",
    "observe",
    "record_event",
    "record_summary",
]

RUNS_KEY = "metrics:runs"
EVENTS = ("submitted", "started", "succeeded", "failed")
# Seconds: from a tenth of a second (a warm queue) to a day (a long run).
BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400)
HISTOGRAMS = {
    "wait": "Seconds from submission to the start of the run on a worker",
    "duration": "Seconds a run executed on its worker",
}
SUMMARY_FIELDS = {
    "cpu_percent_mean": "Mean CPU use of the node during its last run, percent",
    "mem_used_max_bytes": "Peak memory used on the node during its last run, bytes",
    "tokens_per_s": "Generation speed of the node's last run, tokens per second",
    "duration_s": "Duration of the node's last run, seconds",
    "sampler_cpu_share": "Share of one CPU the telemetry sampler used in the last run",
}


def record_event(client: redis.Redis, event: str, queue: str) -> None:
    """Count one run ``event`` (submitted, started, succeeded, failed) on ``queue``."""
    client.hincrby(RUNS_KEY, f"{event}|{queue}", 1)


def observe(client: redis.Redis, name: str, queue: str, seconds: float) -> None:
    """Add one observation to histogram ``name`` (wait or duration) of ``queue``."""
    key = f"metrics:hist:{name}:{queue}"
    bucket = next((bound for bound in BUCKETS if seconds <= bound), None)
    if bucket is not None:
        client.hincrby(key, repr(float(bucket)), 1)
    client.hincrbyfloat(key, "sum", seconds)
    client.hincrby(key, "count", 1)


def record_summary(client: redis.Redis, node_id: str, summary: Mapping[str, float]) -> None:
    """Keep the telemetry summary of a node's last run."""
    values = {k: float(v) for k, v in summary.items() if k in SUMMARY_FIELDS and v is not None}
    if values:
        client.hset(f"metrics:node:{node_id}", mapping=values)  # type: ignore[arg-type]


class ClusterCollector(Collector):
    """Builds every metric from Redis at scrape time."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.redis = registry.redis

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        yield from self._nodes(now)
        yield from self._queues(now)
        yield self._runs()
        for name, documentation in HISTOGRAMS.items():
            yield self._histogram(name, documentation)
        yield from self._summaries()

    def _nodes(self, now: float) -> Iterator[Metric]:
        views = self.registry.nodes(now=now)
        states = GaugeMetricFamily(
            "research_nodes", "Registered nodes by tier and state", labels=["tier", "state"]
        )
        counts: dict[tuple[str, str], int] = {
            (tier, state): 0
            for tier in tier_model().names
            for state in ("ready", "busy", "draining", "stale", "lost")
        }
        for view in views:
            key = (view.capabilities.tier, view.state.value)
            counts[key] = counts.get(key, 0) + 1
        for (tier, state), count in sorted(counts.items()):
            states.add_metric([tier, state], count)
        yield states
        lag = GaugeMetricFamily(
            "research_node_heartbeat_age_seconds",
            "Seconds since each node's last heartbeat",
            labels=["node"],
        )
        unhealthy = GaugeMetricFamily(
            "research_node_problems",
            "Problems each node reports (0 when healthy)",
            labels=["node"],
        )
        for view in views:
            lag.add_metric([view.node_id], max(0.0, now - view.last_heartbeat))
            unhealthy.add_metric([view.node_id], len(view.problems))
        yield lag
        yield unhealthy

    def _queues(self, now: float) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "research_queue_depth", "Runs waiting in each queue", labels=["queue"]
        )
        oldest = GaugeMetricFamily(
            "research_queue_oldest_wait_seconds",
            "How long the oldest waiting run of each queue has waited",
            labels=["queue"],
        )
        for queue, length, wait in queue_figures(self.redis, tier_model().queues, now):
            depth.add_metric([queue], length)
            oldest.add_metric([queue], wait or 0.0)
        yield depth
        yield oldest

    def _runs(self) -> Metric:
        runs = CounterMetricFamily(
            "research_runs", "Runs by event and queue", labels=["event", "queue"]
        )
        stored = {text(k): int(v) for k, v in self.redis.hgetall(RUNS_KEY).items()}
        for event in EVENTS:
            for queue in tier_model().queues:
                runs.add_metric([event, queue], stored.get(f"{event}|{queue}", 0))
        return runs

    def _histogram(self, name: str, documentation: str) -> Metric:
        family = HistogramMetricFamily(
            f"research_run_{name}_seconds", documentation, labels=["queue"]
        )
        for queue in tier_model().queues:
            raw = {
                text(k): text(v)
                for k, v in self.redis.hgetall(f"metrics:hist:{name}:{queue}").items()
            }
            below = 0.0
            buckets = []
            for bound in BUCKETS:
                below += float(raw.get(repr(float(bound)), 0))
                buckets.append((repr(float(bound)), below))
            buckets.append(("+Inf", float(raw.get("count", 0))))
            family.add_metric([queue], buckets, sum_value=float(raw.get("sum", 0)))
        return family

    def _summaries(self) -> Iterator[Metric]:
        families = {
            field: GaugeMetricFamily(f"research_last_run_{field}", doc, labels=["node"])
            for field, doc in SUMMARY_FIELDS.items()
        }
        for node_id in self.registry.node_ids():
            values = self.redis.hgetall(f"metrics:node:{node_id}")
            for key, value in values.items():
                if (field := text(key)) in families:
                    families[field].add_metric([node_id], float(value))
        yield from families.values()
