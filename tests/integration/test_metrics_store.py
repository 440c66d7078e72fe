"""Run metrics as workers store them in Redis and the collector exports them."""

from __future__ import annotations

import redis

from controller.metrics import BUCKETS, ClusterCollector, observe, record_event
from controller.registry import Registry


def histogram(client: redis.Redis, name: str, queue: str) -> dict[str, float]:
    """Return the exported samples of histogram ``name`` for ``queue``."""
    family = next(
        metric
        for metric in ClusterCollector(Registry(client)).collect()
        if metric.name == f"research_run_{name}_seconds"
    )
    return {
        sample.name.rsplit("_", 1)[-1] + sample.labels.get("le", ""): sample.value
        for sample in family.samples
        if sample.labels["queue"] == queue
    }


def test_histogram_buckets_are_cumulative(redis_client: redis.Redis) -> None:
    """Each observation is stored once, in its own bucket; the export counts it
    in every bucket from its own upwards, as Prometheus expects."""
    observed = [0.05, 0.3, 0.3, 7.0, 4000.0, 10**6]
    with redis_client.pipeline(transaction=False) as pipe:
        for seconds in observed:
            observe(pipe, "duration", "research-micro", seconds)
        pipe.execute()
    exported = histogram(redis_client, "duration", "research-micro")
    for bound in BUCKETS:
        expected = sum(1 for seconds in observed if seconds <= bound)
        assert exported[f"bucket{float(bound)}"] == expected, bound
    assert exported["bucket+Inf"] == exported["count"] == len(observed)
    assert exported["sum"] == sum(observed)
    assert histogram(redis_client, "duration", "research-small")["count"] == 0


def test_events_count_per_queue(redis_client: redis.Redis) -> None:
    """Events written through a pipeline and directly add up alike."""
    with redis_client.pipeline(transaction=False) as pipe:
        record_event(pipe, "started", "research-any")
        pipe.execute()
    record_event(redis_client, "started", "research-any")
    runs = next(
        metric
        for metric in ClusterCollector(Registry(redis_client)).collect()
        if metric.name == "research_runs"
    )
    counts = {
        (s.labels["event"], s.labels["queue"]): s.value
        for s in runs.samples
        if s.name.endswith("_total")
    }
    assert counts[("started", "research-any")] == 2
    assert counts[("started", "research-micro")] == 0
