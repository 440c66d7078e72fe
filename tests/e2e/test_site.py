"""site.yml and the operations playbooks on the lab's real machines.

The tests share one lab, provisioned once, and run in file order: converge,
idempotence and check mode, a real Gemma run, the broker's workers and
credentials, a fourth machine added with add_worker.yml, a rolling restart
under load, discovery, a failed model pull, and decommissioning. Playbooks
run through ansible-runner and are judged by its per-host stats.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from controller.profiles import load_profile
from lab import make_spec
from lab.provision import DEMO_MODEL, PlaybookRun
from tests.e2e.cluster import Cluster

pytestmark = [pytest.mark.lab, pytest.mark.slow]

WORKERS = ("lab-micro-1", "lab-small-1")
NEW_WORKER = "lab-micro-2"
GEMMA = {
    "file": "gemma-3-270m-q4_k_m.gguf",
    "sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    "size_bytes": 253113024,
    "ram_gb": 0.6,
    "runtime": "llama_cpp",
    "gpu": False,
    "gpu_memory_gb": 0,
}


def _assert_no_change(outcome: PlaybookRun) -> None:
    assert outcome.ok, outcome.recap()
    changed = {host: n for host, n in outcome.changed().items() if n}
    assert changed == {}, f"{outcome.recap()}\nchanged: {outcome.changed_tasks}"


def test_site_converges_every_host(cluster: Cluster) -> None:
    """The first site.yml run succeeds on the controller and both workers."""
    assert sorted(cluster.first.stats) == ["lab-controller", *WORKERS]


def test_second_run_changes_nothing(cluster: Cluster) -> None:
    """A second site.yml run reports changed=0 on every host."""
    second = cluster.play("site.yml")
    _assert_no_change(second)
    print(f"\nsecond site.yml: {second.wall_s:.1f} s, first {cluster.first.wall_s:.1f} s")


def test_check_mode_on_the_converged_lab_reports_no_change(cluster: Cluster) -> None:
    """site.yml --check on the converged lab reports no change and no failure."""
    _assert_no_change(cluster.play("site.yml", check=True))


def test_gemma_run_lands_on_micro_and_returns_text_with_telemetry(cluster: Cluster) -> None:
    """A researcher's Gemma 3 270M run goes to research-micro and comes back
    with generated text and a telemetry summary."""
    client = cluster.researcher()
    submitted = client.submit(DEMO_MODEL, prompt="Name three rivers.", max_tokens=16)
    assert submitted.queue == "research-micro"
    final = client.wait(submitted.run_id, timeout_s=300)
    assert final["state"] == "succeeded", final
    result = final["result"]
    assert result["output"][0].strip(), result
    assert result["telemetry"]["summary"]["samples"] > 0, result["telemetry"]


def test_every_worker_runs_a_pool_of_one(cluster: Cluster) -> None:
    """Celery's remote control, asked from the controller, shows each
    worker with a pool of exactly one process."""
    script = (
        "import json, os; from controller.celery_config import make_celery; "
        "app = make_celery(os.environ['RESEARCH_REDIS_URL']); "
        "print(json.dumps(app.control.inspect(timeout=5).stats()))"
    )
    command = (
        "set -a; . /etc/research-orchestration/controller.env; set +a; "
        f'/opt/research-orchestration/venv/bin/python -c "{script}"'
    )
    stats = json.loads(cluster.host("lab-controller").check_output(command))
    assert sorted(stats) == [f"celery@{name}" for name in WORKERS]
    for name, worker in stats.items():
        assert worker["pool"]["max-concurrency"] == 1, name
        assert len(worker["pool"]["processes"]) == 1, name


def _secret(cluster: Cluster, name: str) -> str:
    return (cluster.lab.layout.secrets_dir / name).read_text(encoding="utf-8").split()[0]


def test_redis_refuses_strangers_and_the_worker_account_cannot_administer(
    cluster: Cluster,
) -> None:
    """Redis answers no client without credentials or with wrong ones, and
    the workers' account may not run CONFIG or FLUSHALL."""
    anonymous = redis.Redis(host=cluster.address, socket_timeout=5)
    with pytest.raises(redis.AuthenticationError):
        anonymous.get("research-micro")
    wrong = redis.Redis(
        host=cluster.address, username="research-worker", password="wrong", socket_timeout=5
    )
    with pytest.raises(redis.AuthenticationError):
        wrong.ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=cluster.address, username="default", password="", socket_timeout=5).ping()
    worker = redis.Redis(
        host=cluster.address,
        username="research-worker",
        password=_secret(cluster, "redis-worker-password"),
        socket_timeout=5,
    )
    assert worker.ping()
    forbidden = (("CONFIG", "GET", "maxmemory"), ("FLUSHALL",), ("KEYS", "*"), ("SHUTDOWN",))
    for command in forbidden:
        with pytest.raises(redis.exceptions.NoPermissionError):
            worker.execute_command(*command)
    with pytest.raises(redis.exceptions.NoPermissionError):
        worker.hgetall("registry:node:lab-micro-1")


def test_secrets_are_readable_by_the_operator_only(cluster: Cluster) -> None:
    """The secrets directory is 0700 and every secret in it 0600."""
    secrets = cluster.lab.layout.secrets_dir
    assert secrets.stat().st_mode & 0o777 == 0o700
    files = sorted(p.name for p in secrets.iterdir() if not p.name.endswith("lockfile"))
    assert files == [
        "operator-token",
        "redis-controller-password",
        "redis-worker-password",
        "researcher-token",
        "worker-secret",
    ]
    for path in secrets.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path


def _wait_until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s: {what}"
        time.sleep(1)


def test_added_worker_registers_and_takes_runs(cluster: Cluster) -> None:
    """A fourth machine, added with its profile and add_worker.yml --limit,
    registers and serves a run while the other workers are drained; the
    controller is not touched."""
    cluster.lab.add(make_spec(NEW_WORKER, ("worker",), "micro"))
    added = cluster.play("playbooks/add_worker.yml", limit=NEW_WORKER)
    assert added.ok, added.recap()
    assert sorted(added.stats) == [NEW_WORKER]
    operator = cluster.operator()
    assert operator.request("GET", f"/v1/nodes/{NEW_WORKER}")["state"] == "ready"
    try:
        for name in WORKERS:
            operator.drain(name, "test: only the new worker serves")
        # A worker learns of its drain at its next heartbeat.
        _wait_until(
            lambda: all(
                operator.request("GET", f"/v1/nodes/{name}")["consuming"] == [] for name in WORKERS
            ),
            30,
            "the drained workers stop consuming",
        )
        client = cluster.researcher()
        submitted = client.submit(DEMO_MODEL, prompt="Say hello.", max_tokens=8)
        final = client.wait(submitted.run_id, timeout_s=300)
    finally:
        for name in WORKERS:
            operator.undrain(name)
    assert final["state"] == "succeeded", final
    assert final["result"]["node_id"] == NEW_WORKER


def test_rolling_restart_with_runs_in_flight_loses_none(cluster: Cluster) -> None:
    """rolling_restart.yml completes while runs are queued and running, and
    every run submitted before it finishes, succeeded, once."""
    client = cluster.researcher()
    runs = [
        client.submit(DEMO_MODEL, prompt=f"Count to {n}.", max_tokens=96).run_id for n in range(6)
    ]
    outcome: list[PlaybookRun] = []
    thread = threading.Thread(
        target=lambda: outcome.append(cluster.play("playbooks/rolling_restart.yml"))
    )
    thread.start()
    finals = [client.wait(run_id, timeout_s=900) for run_id in runs]
    thread.join(timeout=900)
    assert outcome and outcome[0].ok, outcome[0].recap() if outcome else "no outcome"
    assert [final["state"] for final in finals] == ["succeeded"] * len(runs), finals
    broker = redis.Redis(
        host=cluster.address,
        username="research-controller",
        password=_secret(cluster, "redis-controller-password"),
        socket_timeout=5,
    )
    # Each start counts one attempt and a worker's shutdown uncounts the last
    # run it saw, finished or not (worker.app): a run read above 1 was
    # started again without being handed back, which draining must prevent.
    attempts = [int(broker.hget(f"run:{run_id}", "attempts") or 0) for run_id in runs]
    assert all(count <= 1 for count in attempts), attempts
    for name in (*WORKERS, NEW_WORKER):
        node = cluster.operator().request("GET", f"/v1/nodes/{name}")
        assert node["state"] == "ready" and node["drain"] is None, node


def test_discover_writes_a_profile_of_the_machine(cluster: Cluster, tmp_path: Path) -> None:
    """discover.yml fingerprints a machine by address and writes a valid
    node profile with its RAM, CPUs and architecture."""
    outcome = cluster.play(
        "playbooks/discover.yml",
        extravars={
            "discover_address": cluster.lab.address("lab-small-1"),
            "discover_node_id": "found-1",
            "discover_profiles_dir": str(tmp_path),
        },
    )
    assert outcome.ok, outcome.recap()
    profile = load_profile(tmp_path / "found-1.yaml")
    facts = cluster.host("lab-small-1")
    assert profile.address == cluster.lab.address("lab-small-1")
    assert profile.cpus == int(facts.check_output("nproc --all"))
    assert profile.arch == facts.check_output("uname -m")
    assert profile.ram_gb > 0
    assert profile.gpu is False
    assert profile.roles == ("worker",)


def test_a_model_with_a_wrong_checksum_fails_by_name_and_leaves_no_file(
    cluster: Cluster,
) -> None:
    """pull_models.yml fails naming a model whose download does not match its
    sha256, and leaves no file of it on the node."""
    mirror = f"http://{cluster.address}:8081/{GEMMA['file']}"
    catalog = {
        DEMO_MODEL: {**GEMMA, "url": mirror},
        "broken": {**GEMMA, "file": "broken.gguf", "url": mirror, "sha256": "0" * 64},
    }
    outcome = cluster.play(
        "playbooks/pull_models.yml",
        limit="lab-micro-1",
        extravars={"tier": "micro", "model_catalog": catalog},
    )
    assert not outcome.ok
    assert any("model broken" in line for line in outcome.failed), outcome.failed
    files = cluster.host("lab-micro-1").check_output("ls /var/lib/research-orchestration/models")
    assert "broken" not in files
    assert GEMMA["file"] in files


def test_decommission_stops_and_deregisters_the_worker(cluster: Cluster) -> None:
    """decommission.yml drains, stops and disables the worker and removes it
    from the registry."""
    outcome = cluster.play("playbooks/decommission.yml", limit=NEW_WORKER)
    assert outcome.ok, outcome.recap()
    service = cluster.host(NEW_WORKER).service("research-worker")
    assert not service.is_running
    assert not service.is_enabled
    nodes = [node["node_id"] for node in cluster.operator().nodes()]
    assert NEW_WORKER not in nodes
    assert yaml.safe_load((cluster.lab.layout.nodes_dir / f"{NEW_WORKER}.yaml").read_text())
