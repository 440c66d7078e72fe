"""Faults on the lab's real machines: a worker machine lost mid-run, a worker's
network cut and restored, and a worker alive but cut off from the broker.

The cluster runs with the default health policy: a node is stale 15 s after
its last heartbeat and lost 15 s later. Each test leaves the lab as it found
it (machines up, networks restored, nodes ready).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.e2e.cluster import Cluster

pytestmark = [pytest.mark.lab, pytest.mark.slow]

TTL_S, GRACE_S, INTERVAL_S = 15.0, 15.0, 5.0
WORKERS = ("lab-micro-1", "lab-small-1")


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll until ``check`` holds; return the seconds it took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"{what}: not within {timeout_s} s")
        time.sleep(0.25)
    return time.monotonic() - start


def node(cluster: Cluster, name: str) -> dict[str, Any]:
    return cluster.operator().request("GET", f"/v1/nodes/{name}")


def ready(cluster: Cluster, name: str) -> bool:
    view = node(cluster, name)
    return view["state"] in ("ready", "busy") and not view["problems"]


@pytest.fixture
def both_ready(cluster: Cluster) -> Iterator[Cluster]:
    """Both workers ready before the test, and again after it."""
    for name in WORKERS:
        wait_for(lambda n=name: ready(cluster, n), 120, f"{name} ready")
    yield cluster
    for name in WORKERS:
        wait_for(lambda n=name: ready(cluster, n), 180, f"{name} ready again")


def test_lost_machine_run_finishes_on_another_worker(both_ready: Cluster) -> None:
    """A worker machine killed mid-run goes stale, then lost within TTL + grace; its run
    goes back to its queue then and finishes on the other worker reading that queue,
    long before the broker's visibility timeout."""
    cluster = both_ready
    client = cluster.researcher()
    run = client.submit(runtime="noop", sleep_s=20)
    wait_for(
        lambda: any(node(cluster, n)["run_id"] == run.run_id for n in WORKERS),
        60,
        "the run to start",
    )
    victim = next(n for n in WORKERS if node(cluster, n)["run_id"] == run.run_id)
    survivor = next(n for n in WORKERS if n != victim)
    last_beat = node(cluster, victim)["last_heartbeat"]
    cluster.lab.kill(victim)
    cluster.lab.cut(victim)  # a killed machine's address would still answer with resets
    killed_at = time.time()
    try:
        wait_for(
            lambda: node(cluster, victim)["state"] == "stale",
            TTL_S + 2 * INTERVAL_S,
            f"{victim} stale",
        )
        stale_at = time.time()
        wait_for(
            lambda: node(cluster, victim)["state"] == "lost",
            GRACE_S + 2 * INTERVAL_S,
            f"{victim} lost",
        )
        lost_at = time.time()
        final = client.wait(run.run_id, timeout_s=120)
        done_at = time.time()
    finally:
        cluster.lab.restore(victim)
        cluster.lab.restart(victim)
    print(
        f"\nkilled {victim} {killed_at - last_beat:.1f} s after its last heartbeat; "
        f"stale {stale_at - last_beat:.1f} s, lost {lost_at - last_beat:.1f} s after it; "
        f"run finished on {final['node_id']} {done_at - lost_at:.1f} s after the loss "
        f"(bound: TTL {TTL_S:.0f} s + grace {GRACE_S:.0f} s + one check interval)"
    )
    assert final["state"] == "succeeded" and final["node_id"] == survivor
    assert lost_at - last_beat <= TTL_S + GRACE_S + 2 * INTERVAL_S


def test_network_cut_and_restored_worker_resumes_by_itself(both_ready: Cluster) -> None:
    """A worker cut off long enough to be declared lost heartbeats and consumes again on
    its own once its network is back, and takes runs."""
    cluster = both_ready
    victim = "lab-small-1"
    cluster.lab.cut(victim)
    try:
        wait_for(
            lambda: node(cluster, victim)["state"] == "lost",
            TTL_S + GRACE_S + 3 * INTERVAL_S,
            f"{victim} lost",
        )
    finally:
        cluster.lab.restore(victim)
    back = wait_for(lambda: ready(cluster, victim), 120, f"{victim} back")
    print(f"\n{victim} ready and consuming {back:.1f} s after its network came back")
    view = node(cluster, victim)
    assert view["consuming"] == view["queues"]
    client = cluster.researcher()
    run = client.submit(runtime="noop", ram_gb=4)  # research-small: only lab-small-1
    assert client.wait(run.run_id, timeout_s=120)["node_id"] == victim


@contextmanager
def broker_blocked(cluster: Cluster, worker: str) -> Iterator[None]:
    """Drop the worker's traffic to Redis at the controller; its API traffic flows."""
    netns = cluster.lab.machine("lab-controller").netns
    rule = [
        "INPUT",
        "-s",
        cluster.lab.address(worker),
        "-p",
        "tcp",
        "--dport",
        "6379",
        "-j",
        "DROP",
    ]
    subprocess.run(["ip", "netns", "exec", netns, "iptables", "-I", *rule], check=True)
    try:
        yield
    finally:
        subprocess.run(["ip", "netns", "exec", netns, "iptables", "-D", *rule], check=True)


def test_worker_cut_from_the_broker_is_reported_not_healthy(both_ready: Cluster) -> None:
    """A worker that still heartbeats but can no longer reach the broker reports it; the
    registry shows the problem and the dispatcher no longer counts the node."""
    cluster = both_ready
    victim = "lab-small-1"
    with broker_blocked(cluster, victim):
        took = wait_for(
            lambda: bool(node(cluster, victim)["problems"]), 120, f"{victim} to report a problem"
        )
        view = node(cluster, victim)
        decision = cluster.researcher().explain(runtime="noop", ram_gb=4)
    print(f"\n{victim} reported {view['problems']} {took:.1f} s after the cut")
    assert view["state"] in ("ready", "busy")  # alive: it heartbeats
    assert "not connected to the broker" in view["problems"]
    assert decision["refused"] and f"unhealthy ({victim})" in decision["reason"]
