"""The controller's Prometheus metrics, scraped over HTTP from a running cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.cluster import Cluster, cluster
from tests.services import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Cluster]:
    with cluster(tmp_path_factory.mktemp("metrics"), models_dir) as running:
        running.start_worker("w-micro", "micro")
        yield running


def scrape(lab: Cluster) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reply = httpx.get(
        f"{lab.api_url}/metrics",
        headers={"Authorization": f"Bearer {lab.files.tokens['operator']}"},
    )
    assert reply.status_code == 200, reply.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }


def test_metrics_need_a_token(lab: Cluster) -> None:
    """/metrics without a token is refused."""
    assert httpx.get(f"{lab.api_url}/metrics").status_code == 401


def test_runs_nodes_and_queues_are_counted(lab: Cluster) -> None:
    """Two good runs and a refused command show as submitted, started, succeeded and
    failed; the node as ready micro; waits and durations in histograms."""
    client = lab.client()
    good = [client.submit("gemma3-270m", "Hello", max_tokens=4) for _ in range(2)]
    bad = client.submit(argv=["/bin/false"], ram_gb=1)
    for run in (*good, bad):
        client.wait(run.run_id, timeout_s=120)
    micro = (("queue", "research-micro"),)

    def counted() -> bool:
        return scrape(lab).get(("research_runs_total", (("event", "failed"), *micro)), 0) >= 1

    wait_until(counted, 10, "the failed run to be counted")
    metrics = scrape(lab)
    assert metrics[("research_runs_total", (("event", "submitted"), *micro))] == 3
    assert metrics[("research_runs_total", (("event", "started"), *micro))] == 3
    assert metrics[("research_runs_total", (("event", "succeeded"), *micro))] == 2
    assert metrics[("research_run_wait_seconds_count", micro)] == 3
    assert metrics[("research_run_duration_seconds_count", micro)] >= 2
    assert metrics[("research_nodes", (("state", "ready"), ("tier", "micro")))] == 1
    assert metrics[("research_queue_depth", micro)] == 0
    assert metrics[("research_node_heartbeat_age_seconds", (("node", "w-micro"),))] < 5
    assert metrics[("research_last_run_tokens_per_s", (("node", "w-micro"),))] >= 0
