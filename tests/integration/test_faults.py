"""Fault tests with counts: each runs the fault against the protected setup and
against a control with the protection off, to show that the test sees a loss."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.celery_config import RUN_TASK, RunLimits, make_celery
from tests.integration.cluster import Cluster, cluster

pytestmark = pytest.mark.slow
RUNS, KILLS = 8, 4


@pytest.fixture
def lab(tmp_path: Path, models_dir: Path) -> Iterator[Cluster]:
    with cluster(
        tmp_path, models_dir, ("--appendonly", "yes", "--appendfsync", "everysec")
    ) as running:
        yield running


def kill_pool_children(lab: Cluster, node_id: str, kills: int) -> list[str]:
    """Kill the worker's pool process once during each of ``kills`` different runs."""
    killed: list[str] = []
    deadline = time.monotonic() + 120
    while len(killed) < kills and time.monotonic() < deadline:
        run_id = lab.node(node_id)["run_id"]
        if run_id and run_id not in killed:
            time.sleep(0.3)
            lab.pool_child(node_id).kill()
            killed.append(run_id)
        time.sleep(0.05)
    return killed


def run_with_kills(lab: Cluster, node_id: str) -> tuple[int, int, int]:
    """Submit RUNS runs, kill the pool during KILLS of them; return (lost, starts, kills)."""
    client = lab.client()
    runs = [client.submit(runtime="noop", sleep_s=1.0).run_id for _ in range(RUNS)]
    killer: list[str] = []
    thread = threading.Thread(
        target=lambda: killer.extend(kill_pool_children(lab, node_id, KILLS))
    )
    thread.start()
    finals = [client.wait(run_id, timeout_s=180) for run_id in runs]
    thread.join()
    lost = sum(final["state"] != "succeeded" for final in finals)
    backend = lab.redis_client()
    starts = sum(int(backend.hget(f"run:{r}", "attempts") or 0) for r in runs)
    return lost, starts, len(killer)


def test_killed_pool_processes_lose_no_run(lab: Cluster) -> None:
    """Pool processes killed mid-run 4 times over 8 runs: 0 lost, duplicates <= kills."""
    lab.start_worker("w-1", "micro")
    lost, starts, kills = run_with_kills(lab, "w-1")
    duplicates = starts - RUNS
    print(f"protected: {RUNS} runs, {kills} kills, {lost} lost, {duplicates} duplicate starts")
    assert kills == KILLS
    assert lost == 0
    assert 0 <= duplicates <= kills


def test_control_without_reject_on_worker_lost_loses_runs(lab: Cluster) -> None:
    """Control: with task_reject_on_worker_lost off, the same kills lose runs."""
    lab.start_worker(
        "w-1",
        "micro",
        module="tests.integration.control_worker",
        CONTROL_OFF="reject_on_worker_lost",
    )
    lost, starts, kills = run_with_kills(lab, "w-1")
    print(f"control: {RUNS} runs, {kills} kills, {lost} lost, {starts - RUNS} duplicate starts")
    assert kills == KILLS and lost >= 1


def queue_noops(lab: Cluster, count: int) -> list[str]:
    app = make_celery(lab.redis.url, RunLimits())
    ids = [f"00000000-0000-0000-0000-{index:012d}" for index in range(count)]
    spec = {"runtime": "noop", "params": {}, "telemetry": {"enabled": False}}
    with app.producer_or_acquire() as producer:
        for run_id in ids:
            app.send_task(
                RUN_TASK, args=[spec], task_id=run_id, queue="research-any", producer=producer
            )
    return ids


def test_redis_killed_loses_no_queued_run_and_workers_resume(lab: Cluster) -> None:
    """1,000 queued runs survive SIGKILL of Redis (AOF everysec), and a worker connected
    before the crash consumes them all afterwards without being restarted."""
    lab.start_worker("w-1", "micro")
    operator = lab.client("operator")
    operator.drain("w-1", "hold the queue")
    deadline = time.monotonic() + 20
    while lab.node("w-1")["consuming"] and time.monotonic() < deadline:
        time.sleep(0.2)
    ids = queue_noops(lab, 1000)
    time.sleep(1.5)  # appendfsync everysec: the last second may not be on disk yet
    lab.redis.kill()
    lab.redis.start()
    queued = lab.redis_client().llen("research-any")
    print(f"after SIGKILL and restart: {queued} of 1000 queued runs kept")
    assert queued == 1000
    operator.undrain("w-1")
    backend = lab.redis_client()
    deadline = time.monotonic() + 240
    done = 0
    while time.monotonic() < deadline:
        done = sum(backend.exists(f"celery-task-meta-{run_id}") for run_id in ids[::50])
        if done == len(ids[::50]) and backend.llen("research-any") == 0:
            break
        time.sleep(1)
    finished = sum(
        json.loads(backend.get(f"celery-task-meta-{r}") or "{}").get("status") == "SUCCESS"
        for r in ids
    )
    print(f"finished after the restart: {finished} of 1000")
    assert finished == 1000
    assert lab.worker_pid("w-1") == lab.workers["w-1"].process.pid


def test_control_redis_without_persistence_loses_the_queue(
    tmp_path: Path, models_dir: Path
) -> None:
    """Control: without AOF, SIGKILL of Redis loses every queued run."""
    with cluster(tmp_path, models_dir) as bare:
        queue_noops(bare, 1000)
        bare.redis.kill()
        bare.redis.start()
        kept = bare.redis_client().llen("research-any")
        print(f"control without persistence: {kept} of 1000 queued runs kept")
        assert kept == 0


def test_pickle_message_is_rejected_not_executed(lab: Cluster, tmp_path: Path) -> None:
    """A pickled message on a queue is refused by the worker; its payload never runs."""
    lab.start_worker("w-1", "micro")
    marker = tmp_path / "pwned"
    app = make_celery(lab.redis.url, RunLimits())
    app.conf.accept_content = ["json", "pickle"]
    spec = {"runtime": "command", "params": {"argv": ["/usr/bin/touch", str(marker)]}}
    app.send_task(
        RUN_TASK,
        args=[spec],
        queue="research-any",
        serializer="pickle",
        task_id="00000000-0000-0000-0000-0000000000aa",
    )
    raw = {
        "body": "not json at all",
        "content-type": "application/x-evil",
        "content-encoding": "utf-8",
        "headers": {},
        "properties": {
            "delivery_tag": "t",
            "body_encoding": "utf-8",
            "delivery_info": {"exchange": "research", "routing_key": "research-any"},
        },
    }
    lab.redis_client().lpush("research-any", json.dumps(raw))
    deadline = time.monotonic() + 10
    while lab.redis_client().llen("research-any") and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    log = lab.workers["w-1"].log.read_text()
    assert not marker.exists()
    assert "ContentDisallowed" in log or "Refusing to deserialize" in log
    assert lab.redis_client().get("celery-task-meta-00000000-0000-0000-0000-0000000000aa") is None


def test_run_over_its_time_limit_is_stopped_once(lab: Cluster) -> None:
    """A run longer than its time limit is stopped with that reason and not started again."""
    lab.start_worker("w-1", "micro")
    client = lab.client()
    run = client.submit(runtime="noop", sleep_s=30, time_limit_s=2)
    final = client.wait(run.run_id, timeout_s=60)
    assert final["state"] == "failed"
    assert final["error"]["type"] in ("SoftTimeLimitExceeded", "TimeLimitExceeded")
    time.sleep(2)
    assert int(lab.redis_client().hget(f"run:{run.run_id}", "attempts") or 0) == 1
    assert lab.redis_client().llen("research-any") == 0
