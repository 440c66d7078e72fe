"""Every panel of the Grafana dashboard, queried in a real Prometheus that
scrapes a running cluster's controller, returns data."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.integration.cluster import Cluster, cluster
from tests.services import free_port, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("prometheus") is None, reason="needs the Debian package prometheus"
    ),
]
DASHBOARD = Path(__file__).parents[2] / "roles/monitoring/files/cluster-overview.json"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Cluster]:
    with cluster(tmp_path_factory.mktemp("dashboard"), models_dir) as running:
        running.start_worker("w-micro", "micro")
        yield running


@pytest.fixture(scope="module")
def prometheus(lab: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prometheus scraping the controller every second; yields its URL."""
    directory = tmp_path_factory.mktemp("prometheus")
    token = directory / "token"
    token.write_text(lab.files.tokens["researcher"])
    config = directory / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "research-controller",
                        "authorization": {"type": "Bearer", "credentials_file": str(token)},
                        "static_configs": [{"targets": [lab.api_url.removeprefix("http://")]}],
                    }
                ],
            }
        )
    )
    url = f"http://127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address={url.removeprefix('http://')}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(directory / "log").open("w"),
    )
    try:
        wait_until(lambda: _ready(url), 30, "Prometheus to be ready")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def query(prometheus: str, expression: str) -> list[dict[str, object]]:
    reply = httpx.get(f"{prometheus}/api/v1/query", params={"query": expression}).json()
    assert reply["status"] == "success", reply
    result: list[dict[str, object]] = reply["data"]["result"]
    return result


def test_every_panel_query_returns_data(lab: Cluster, prometheus: str) -> None:
    """With runs flowing while Prometheus scrapes, each panel's query has data."""
    wait_until(lambda: bool(query(prometheus, "research_nodes")), 30, "a first scrape")
    client = lab.client()
    for _ in range(2):
        runs = [
            client.submit("gemma3-270m", "Hi", max_tokens=4),
            client.submit(argv=["/bin/false"], ram_gb=1),
        ]
        for run in runs:
            client.wait(run.run_id, timeout_s=120)
        time.sleep(2)
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert len(panels) >= 10
    empty = []
    for panel in panels:
        for target in panel["targets"]:

            def has_data(expression: str = target["expr"]) -> bool:
                return bool(query(prometheus, expression))

            try:
                wait_until(has_data, 15, f"data for {panel['title']!r}")
            except TimeoutError:
                empty.append(f"{panel['title']}: {target['expr']}")
    assert empty == [], "panels without data:\n" + "\n".join(empty)
