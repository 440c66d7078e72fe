"""The cluster a benchmark runs on: a Redis of its own, the controller service,
workers as processes, started here and stopped after (see tests/services.py).

Everything runs with the production defaults (heartbeat every 5 s, TTL 15 s,
grace 15 s), not the fast health checks of the integration tests. Redis
database 0 is the cluster's; database 1 is the plain Celery reference's
broker; database 15 holds the probes' timestamps (benchmarks.probes).
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from benchmarks.probes import PROBE_ENV, Probe
from controller.submit import Client
from tests.models import GEMMA_CATALOG_FILE, gemma_model
from tests.services import (
    GEMMA,
    PYTHON,
    ROOT,
    ControllerFiles,
    RedisServer,
    Service,
    controller_files,
    controller_service,
    redis_server,
    spawn,
    worker_service,
)

__all__ = ["BenchCluster", "bench_cluster", "gemma_models_dir"]

DEFAULT_HEALTH = {"RESEARCH_HEARTBEAT_INTERVAL_S": "5"}


def gemma_models_dir(directory: Path) -> Path:
    """Return a node's models directory holding Gemma 3 270M, as a verified pull
    leaves it (the file under the catalog's name and its checksum sidecar)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / GEMMA_CATALOG_FILE
    if not target.exists():
        target.symlink_to(gemma_model())
        (directory / f"{GEMMA_CATALOG_FILE}.sha256").write_text(f"{GEMMA['sha256']}\n")
    return directory


@dataclass
class BenchCluster:
    redis: RedisServer
    files: ControllerFiles
    controller: Service
    api_url: str
    directory: Path
    stack: ExitStack
    workers: dict[str, Service] = field(default_factory=dict)

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.redis.port}/{db}"

    @property
    def probe(self) -> Probe:
        return Probe(redis.Redis.from_url(self.url(15)))

    def client(self, who: str = "researcher") -> Client:
        return Client(self.api_url, self.files.tokens[who])

    def start_worker(self, node_id: str, tier: str = "micro", models: bool = False) -> Service:
        """Start the project's worker with the probe; return once it consumes."""
        models_dir = self.directory / "models" if models else self.directory / "no-models"
        if models:
            gemma_models_dir(models_dir)
        models_dir.mkdir(parents=True, exist_ok=True)
        service = self.stack.enter_context(
            worker_service(
                node_id,
                tier,
                self.files,
                self.redis.url,
                self.api_url,
                models_dir,
                self.directory / node_id,
                module="benchmarks.probe_worker",
                **{**DEFAULT_HEALTH, PROBE_ENV: self.url(15)},
            )
        )
        self.workers[node_id] = service
        return service

    def start_plain_worker(self, name: str) -> Service:
        """Start a plain Celery worker on database 1; return once it is ready."""
        env = {"BENCH_BROKER_URL": self.url(1), PROBE_ENV: self.url(15), "BENCH_NODE": name}
        service = spawn(name, "benchmarks.plain_worker", env, self.directory)
        self.stack.callback(service.stop, 60)
        self.probe.ready(f"celery@{name}")
        self.workers[name] = service
        return service

    def start_echo(self) -> None:
        """Start the LPUSH/BRPOP echo process of the floor measurement."""
        process = subprocess.Popen(
            [str(PYTHON), "-m", "benchmarks.probes", "echo", self.url(15)], cwd=ROOT
        )

        def stop() -> None:
            process.terminate()
            process.wait(timeout=10)

        self.stack.callback(stop)


@contextmanager
def bench_cluster(**controller_env: str) -> Iterator[BenchCluster]:
    """Start a Redis and the controller in a temporary directory; workers are
    started by the benchmark."""
    with tempfile.TemporaryDirectory(prefix="bench-") as work, ExitStack() as stack:
        directory = Path(work)
        server = stack.enter_context(redis_server(directory / "redis"))
        files = controller_files(directory / "controller")
        controller, url = stack.enter_context(
            controller_service(files, server.url, directory, **controller_env)
        )
        yield BenchCluster(server, files, controller, url, directory, stack)
