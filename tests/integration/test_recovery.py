"""No run is lost when workers die, stop or vanish: real processes, real faults."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.integration.cluster import Cluster, cluster

pytestmark = pytest.mark.slow


@pytest.fixture
def lab(tmp_path: Path, models_dir: Path) -> Iterator[Cluster]:
    with cluster(tmp_path, models_dir) as running:
        yield running


def attempts(lab: Cluster, run_id: str) -> int:
    return int(lab.redis_client().hget(f"run:{run_id}", "attempts") or 0)


def test_run_that_kills_its_worker_fails_after_max_attempts(lab: Cluster) -> None:
    """A run whose program kills the worker's pool process each time is requeued, then
    failed with WorkerLost after 3 attempts instead of looping."""
    lab.start_worker("w-1", "micro", RESEARCH_COMMAND_ALLOW="/bin/sh")
    client = lab.client()
    run = client.submit(argv=["/bin/sh", "-c", "kill -9 $PPID; sleep 5"])
    final = client.wait(run.run_id, timeout_s=120)
    print(f"starts counted: {attempts(lab, run.run_id)}, final state: {final['state']}")
    assert final["state"] == "failed"
    assert final["error"]["type"] == "WorkerLost"
    assert "lost on each of 3 attempts" in final["error"]["message"]
    assert attempts(lab, run.run_id) == 4


def test_stopped_worker_hands_its_run_back(lab: Cluster) -> None:
    """A worker told to stop mid-run hands the run back; another worker finishes it, and the
    handed-back start does not count as an attempt."""
    first = lab.start_worker("w-1", "micro", RESEARCH_SHUTDOWN_GRACE_S="1")
    client = lab.client()
    run = client.submit(runtime="noop", sleep_s=4)
    lab.wait_running("w-1", run.run_id)
    first.stop(timeout_s=30)
    assert first.process.returncode is not None
    assert lab.redis_client().llen("research-any") == 1, "the run is back on its queue"
    lab.start_worker("w-2", "micro")
    final = client.wait(run.run_id, timeout_s=60)
    assert final["state"] == "succeeded" and final["node_id"] == "w-2"
    assert attempts(lab, run.run_id) == 1


def test_killed_worker_restarting_gets_its_run_requeued(lab: Cluster) -> None:
    """A worker killed outright mid-run re-registers on restart; the controller requeues the
    run it abandoned at once instead of waiting for the broker's visibility timeout."""
    worker = lab.start_worker("w-1", "micro")
    client = lab.client()
    run = client.submit(runtime="noop", sleep_s=3)
    lab.wait_running("w-1", run.run_id)
    os.killpg(worker.process.pid, signal.SIGKILL)
    worker.process.wait()
    lab.workers.pop("w-1")
    started = time.monotonic()
    lab.start_worker("w-1", "micro")
    final = client.wait(run.run_id, timeout_s=60)
    print(f"restart to result: {time.monotonic() - started:.1f} s")
    assert final["state"] == "succeeded" and attempts(lab, run.run_id) == 2


def test_lost_node_run_finishes_elsewhere_within_ttl_plus_grace(lab: Cluster) -> None:
    """A worker frozen mid-run goes stale, then lost after TTL plus grace (2 + 2 s here); its
    run goes back to the queue then and finishes on another worker."""
    frozen = lab.start_worker("w-1", "micro")
    client = lab.client()
    run = client.submit(runtime="noop", sleep_s=3)
    lab.wait_running("w-1", run.run_id)
    processes = [
        psutil.Process(frozen.process.pid),
        *psutil.Process(frozen.process.pid).children(recursive=True),
    ]
    for process in processes:
        process.suspend()
    frozen_at = time.monotonic()
    try:
        lab.wait_for_node("w-1", "stale", timeout_s=10)
        stale_after = time.monotonic() - frozen_at
        lab.start_worker("w-2", "micro")
        lab.wait_for_node("w-1", "lost", timeout_s=10)
        lost_after = time.monotonic() - frozen_at
        final = client.wait(run.run_id, timeout_s=60)
        print(
            f"stale after {stale_after:.1f} s, lost after {lost_after:.1f} s, "
            f"finished after {time.monotonic() - frozen_at:.1f} s"
        )
        assert final["state"] == "succeeded" and final["node_id"] == "w-2"
        assert lost_after < 2 + 2 + 3, "lost within TTL + grace + one monitor interval"
    finally:
        for process in processes:
            process.kill()
