"""A cluster on this machine for integration tests: a Redis, the controller
service and real worker processes, each started here and stopped after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis

from controller.submit import Client
from tests.services import (
    ControllerFiles,
    RedisServer,
    Service,
    controller_files,
    controller_service,
    redis_server,
    wait_until,
    worker_service,
)

# Fast health checks so that tests of staleness and loss take seconds.
FAST_HEALTH = {
    "RESEARCH_HEARTBEAT_INTERVAL_S": "0.5",
    "RESEARCH_HEARTBEAT_TTL_S": "2",
    "RESEARCH_HEARTBEAT_GRACE_S": "2",
}


@dataclass
class Cluster:
    redis: RedisServer
    files: ControllerFiles
    api_url: str
    directory: Path
    models_dir: Path
    stack: ExitStack
    workers: dict[str, Service] = field(default_factory=dict)

    def client(self, who: str = "researcher") -> Client:
        return Client(self.api_url, self.files.tokens[who])

    def redis_client(self) -> redis.Redis:
        return self.redis.client()

    def start_worker(self, node_id: str, tier: str, module: str = "worker", **env: str) -> Service:
        """Start a worker (``python -m module``) and return once the registry
        shows it consuming."""
        service = self.stack.enter_context(
            worker_service(
                node_id,
                tier,
                self.files,
                self.redis.url,
                self.api_url,
                self.models_dir,
                self.directory / node_id,
                module,
                **{**FAST_HEALTH, **env},
            )
        )
        self.workers[node_id] = service
        return service

    def node(self, node_id: str) -> dict[str, Any]:
        return self.client("operator").request("GET", f"/v1/nodes/{node_id}")

    def wait_for_node(self, node_id: str, state: str, timeout_s: float = 30) -> dict[str, Any]:
        wait_until(
            lambda: self.node(node_id)["state"] == state,
            timeout_s,
            f"node {node_id} to be {state}",
            self.workers.get(node_id),
        )
        return self.node(node_id)

    def wait_running(self, node_id: str, run_id: str, timeout_s: float = 60) -> None:
        wait_until(
            lambda: self.node(node_id)["run_id"] == run_id,
            timeout_s,
            f"run {run_id} to start on {node_id}",
            self.workers.get(node_id),
        )

    def worker_pid(self, node_id: str) -> int:
        """Return the pid of the worker's main process, as the OS sees it now."""
        return psutil.Process(self.workers[node_id].process.pid).pid

    def pool_child(self, node_id: str) -> psutil.Process:
        """Return the worker's pool process (the one that executes runs)."""
        main = psutil.Process(self.workers[node_id].process.pid)
        children = main.children()
        if len(children) != 1:
            raise AssertionError(f"{node_id}: expected one pool process, got {children}")
        return children[0]


@contextmanager
def cluster(
    directory: Path, models_dir: Path, redis_options: tuple[str, ...] = (), **controller_env: str
) -> Iterator[Cluster]:
    """Start a Redis and the controller; workers are started by the tests."""
    with ExitStack() as stack:
        server = stack.enter_context(redis_server(directory / "redis", *redis_options))
        files = controller_files(directory / "controller")
        _, url = stack.enter_context(
            controller_service(files, server.url, directory, **{**FAST_HEALTH, **controller_env})
        )
        yield Cluster(server, files, url, directory, models_dir, stack)
