"""The monitoring role on the lab: Prometheus on the controller scrapes the API,
and every panel of the Cluster Overview dashboard has data there."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import Cluster

pytestmark = [pytest.mark.lab, pytest.mark.slow]
DASHBOARD = Path(__file__).parents[2] / "roles/monitoring/files/cluster-overview.json"


def query(cluster: Cluster, expression: str) -> list[dict[str, Any]]:
    """Ask the controller's Prometheus (loopback only) from the controller itself."""
    reply = cluster.host("lab-controller").check_output(
        "curl -sf --get --data-urlencode %s http://127.0.0.1:9090/api/v1/query",
        f"query={expression}",
    )
    answer = json.loads(reply)
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def test_prometheus_listens_on_loopback_only(cluster: Cluster) -> None:
    """Prometheus answers on the controller's loopback and not on its lab address."""
    host = cluster.host("lab-controller")
    assert host.socket("tcp://127.0.0.1:9090").is_listening
    assert not host.socket(f"tcp://{cluster.address}:9090").is_listening
    assert not host.socket("tcp://0.0.0.0:9090").is_listening


def test_every_dashboard_panel_has_data_on_the_lab(cluster: Cluster) -> None:
    """With runs flowing, each panel's query returns data in the lab's Prometheus."""
    client = cluster.researcher()
    for _ in range(2):
        runs = [
            client.submit("gemma3-270m", "Hi", max_tokens=4),
            client.submit(argv=["/bin/false"], ram_gb=1),
        ]
        for run in runs:
            client.wait(run.run_id, timeout_s=300)
        time.sleep(6)
    empty = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            deadline = time.monotonic() + 60
            while not query(cluster, target["expr"]):
                if time.monotonic() > deadline:
                    empty.append(f"{panel['title']}: {target['expr']}")
                    break
                time.sleep(2)
    assert empty == [], "panels without data:\n" + "\n".join(empty)


def test_scrape_token_is_readable_by_prometheus_only(cluster: Cluster) -> None:
    """The token Prometheus scrapes with is root:prometheus 0640."""
    token = cluster.host("lab-controller").file("/etc/prometheus/research-api-token")
    assert (token.user, token.group, token.mode) == ("root", "prometheus", 0o640)
