"""Real worker processes consuming from a real Redis, driven through the
controller's API: registration, routing, real inference, telemetry, drain."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.celery_config import RUN_TASK, RunLimits, make_celery
from tests.integration.cluster import Cluster, cluster
from tests.services import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Cluster]:
    """A controller with a micro, a small and a medium worker."""
    with cluster(tmp_path_factory.mktemp("cluster"), models_dir) as running:
        for node_id, tier in (("w-micro", "micro"), ("w-small", "small"), ("w-medium", "medium")):
            running.start_worker(node_id, tier)
        yield running


def test_workers_register_their_capabilities(lab: Cluster) -> None:
    """Each worker is listed ready with its tier, queues in order and its verified model."""
    node = lab.node("w-small")
    assert node["state"] == "ready"
    assert node["queues"] == ["research-small", "research-micro", "research-any"]
    assert node["consuming"] == ["research-small", "research-micro", "research-any"]
    assert node["models"] == {
        "gemma3-270m": lab.files.worker_token and node["models"]["gemma3-270m"]
    }
    assert len(node["models"]["gemma3-270m"]) == 64
    assert node["cpus"] >= 1 and node["ram_gb"] > 0


def test_worker_pool_has_concurrency_one(lab: Cluster) -> None:
    """Celery's own inspection reports a pool of exactly one process per worker."""
    app = make_celery(lab.redis.url, RunLimits())
    stats = app.control.inspect(timeout=3).stats() or {}
    pools = {name: s["pool"]["max-concurrency"] for name, s in stats.items()}
    assert pools == {"celery@w-micro": 1, "celery@w-small": 1, "celery@w-medium": 1}


def test_real_gemma_run_returns_text_and_telemetry(lab: Cluster) -> None:
    """A Gemma 3 270M run goes to research-micro and returns text, tokens and telemetry."""
    client = lab.client()
    submitted = client.submit("gemma3-270m", "The capital of France is", max_tokens=12)
    assert submitted.queue == "research-micro"
    final = client.wait(submitted.run_id, timeout_s=120)
    assert final["state"] == "succeeded", final
    result = final["result"]
    assert result["output"][0].strip()
    assert 0 < result["tokens"]["completion"] <= 12 and result["tokens"]["prompt"] > 0
    assert result["timings"]["tokens_per_s"] > 0
    assert result["telemetry"]["series"] and result["telemetry"]["summary"]["samples"] >= 1
    assert final["node_id"] in ("w-micro", "w-small", "w-medium")
    assert result["node_id"] == final["node_id"]


@pytest.mark.parametrize(
    ("ram_gb", "queue", "nodes"),
    [
        (10.0, "research-medium", {"w-medium"}),
        (4.0, "research-small", {"w-small", "w-medium"}),
        (None, "research-any", {"w-micro", "w-small", "w-medium"}),
    ],
)
def test_runs_land_on_the_right_queue_and_worker(
    lab: Cluster, ram_gb: float | None, queue: str, nodes: set[str]
) -> None:
    """Runs needing 10 GB, 4 GB and nothing land on medium, small and any, on consumers of it."""
    client = lab.client()
    submitted = client.submit(runtime="noop", ram_gb=ram_gb)
    assert submitted.queue == queue
    final = client.wait(submitted.run_id, timeout_s=60)
    assert final["state"] == "succeeded" and final["node_id"] in nodes


def test_command_not_allowed_fails_with_the_reason(lab: Cluster) -> None:
    """A command run the node does not allow ends failed, naming the program."""
    client = lab.client()
    run = client.submit(argv=["/bin/true"], ram_gb=10)
    final = client.wait(run.run_id, timeout_s=60)
    assert final["state"] == "failed"
    assert final["error"]["type"] == "CommandNotAllowed"
    assert "'/bin/true' is not allowed on this node" in final["error"]["message"]


def test_cancel_a_running_run(lab: Cluster) -> None:
    """Cancelling a run while it sleeps on a worker ends it as cancelled."""
    client = lab.client()
    run = client.submit(runtime="noop", sleep_s=30, ram_gb=10)
    lab.wait_running("w-medium", run.run_id)
    client.cancel(run.run_id)
    final = client.wait(run.run_id, timeout_s=30)
    assert final["state"] == "cancelled"
    lab.wait_for_node("w-medium", "ready")


def test_drained_worker_finishes_its_run_and_takes_no_more(lab: Cluster) -> None:
    """Drained mid-run, the medium worker finishes; a second medium run waits until undrain."""
    client, operator = lab.client(), lab.client("operator")
    first = client.submit(runtime="noop", sleep_s=2, ram_gb=10)
    lab.wait_running("w-medium", first.run_id)
    operator.drain("w-medium", "testing drain")
    wait_consuming = time.monotonic() + 15
    while lab.node("w-medium")["consuming"] and time.monotonic() < wait_consuming:
        time.sleep(0.2)
    assert lab.node("w-medium")["consuming"] == []
    assert client.wait(first.run_id, timeout_s=30)["state"] == "succeeded"
    # The dispatcher now refuses medium runs; Celery would still queue one.
    refused = client.explain(runtime="noop", ram_gb=10)
    assert refused["refused"] and "draining (w-medium)" in refused["reason"]
    app = make_celery(lab.redis.url, RunLimits())
    app.send_task(
        RUN_TASK,
        args=[{"runtime": "noop", "params": {}}],
        queue="research-medium",
        task_id="00000000-0000-0000-0000-00000000d0d0",
    )
    time.sleep(2)
    assert lab.redis_client().llen("research-medium") == 1
    operator.undrain("w-medium")
    deadline = time.monotonic() + 30
    while lab.redis_client().llen("research-medium") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lab.redis_client().llen("research-medium") == 0
    expected = ["research-medium", "research-small", "research-micro", "research-any"]
    wait_until(
        lambda: lab.node("w-medium")["consuming"] == expected,
        10,
        "w-medium to consume its queues again",
    )


def test_queues_are_read_in_tier_order(lab: Cluster) -> None:
    """With runs waiting on research-small and research-micro, a small worker takes all small
    runs first (kombu's priority queue order), where round robin would alternate."""
    operator = lab.client("operator")
    for node_id in ("w-micro", "w-small", "w-medium"):
        operator.drain(node_id, "order test")
    wait_until_not_consuming(lab, ("w-micro", "w-small", "w-medium"))
    app = make_celery(lab.redis.url, RunLimits())
    ids = []
    for queue in ["research-micro"] * 4 + ["research-small"] * 4:
        task_id = f"00000000-0000-0000-0000-{len(ids):012d}"
        app.send_task(
            RUN_TASK,
            args=[{"runtime": "noop", "params": {"echo": queue}}],
            queue=queue,
            task_id=task_id,
        )
        ids.append(task_id)
    operator.undrain("w-small")
    backend = lab.redis_client()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(
        backend.exists(f"celery-task-meta-{i}") for i in ids
    ):
        time.sleep(0.2)
    finished = [json.loads(backend.get(f"celery-task-meta-{i}"))["result"] for i in ids]
    order = [r["output"] for r in sorted(finished, key=lambda r: r["started_at"])]
    for node_id in ("w-micro", "w-medium"):
        operator.undrain(node_id)
    assert order == ["research-small"] * 4 + ["research-micro"] * 4


def wait_until_not_consuming(lab: Cluster, nodes: tuple[str, ...]) -> None:
    deadline = time.monotonic() + 20
    while any(lab.node(n)["consuming"] for n in nodes):
        assert time.monotonic() < deadline, "workers did not stop consuming"
        time.sleep(0.2)
