"""Real services for tests: a redis-server of their own, started and stopped here."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.models import GEMMA_CATALOG_FILE


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    port: int
    directory: Path
    command: list[str]
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)

    def kill(self) -> None:
        """SIGKILL the server, as a crash or power loss would."""
        self.process.kill()
        self.process.wait()

    def start(self) -> None:
        """Start the server again on the same port and directory."""
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL)
        _wait_for(self)


@contextmanager
def redis_server(directory: Path, *options: str) -> Iterator[RedisServer]:
    """Run redis-server on a free loopback port with ``options`` (after defaults
    without persistence); stop it after."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "redis-server is not installed; install the Debian package redis-server"
        )
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(directory),
        "--save",
        "",
        "--appendonly",
        "no",
        *options,
    ]
    server = RedisServer(
        port, directory, command, subprocess.Popen(command, stdout=subprocess.DEVNULL)
    )
    try:
        _wait_for(server)
        yield server
    finally:
        server.process.terminate()
        server.process.wait(timeout=10)


def _wait_for(server: RedisServer, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            server.client().ping()
            return
        except redis.ConnectionError:
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {server.port} did not start") from None
            time.sleep(0.05)


# --- the controller's files and service --------------------------------------

GEMMA = {
    "file": GEMMA_CATALOG_FILE,
    "url": "http://mirror.invalid/models/gemma-3-270m-q4_k_m.gguf",
    "sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    "size_bytes": 253113024,
    "ram_gb": 0.6,
    "runtime": "llama_cpp",
}


@dataclass
class ControllerFiles:
    """A catalog, tokens file and worker secret written for one test."""

    directory: Path
    tokens: dict[str, str]
    secret: bytes

    @property
    def catalog(self) -> Path:
        return self.directory / "catalog.json"

    def env(self, redis_url: str, port: int = 0, **extra: str) -> dict[str, str]:
        """The controller's RESEARCH_* environment for these files."""
        return {
            "RESEARCH_REDIS_URL": redis_url,
            "RESEARCH_CATALOG": str(self.catalog),
            "RESEARCH_TOKENS": str(self.directory / "tokens.yml"),
            "RESEARCH_WORKER_SECRET_FILE": str(self.directory / "worker.secret"),
            "RESEARCH_API_PORT": str(port),
            **extra,
        }

    def worker_token(self, node_id: str) -> str:
        from controller.auth import worker_token

        return worker_token(self.secret, node_id)


def controller_files(
    directory: Path, catalog: dict[str, dict[str, object]] | None = None
) -> ControllerFiles:
    """Write a catalog (Gemma by default), a tokens file and a worker secret."""
    import hashlib
    import json
    import secrets

    import yaml

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "catalog.json").write_text(json.dumps(catalog or {"gemma3-270m": GEMMA}))
    tokens = {name: secrets.token_urlsafe(24) for name in ("researcher", "operator", "bob")}
    scopes = {"researcher": "researcher", "operator": "operator", "bob": "researcher"}
    (directory / "tokens.yml").write_text(
        yaml.safe_dump(
            {
                "tokens": [
                    {
                        "name": name,
                        "scope": scopes[name],
                        "sha256": hashlib.sha256(token.encode()).hexdigest(),
                    }
                    for name, token in tokens.items()
                ]
            }
        )
    )
    secret = secrets.token_hex(32).encode()
    (directory / "worker.secret").write_bytes(secret)
    return ControllerFiles(directory, tokens, secret)


# --- controller and worker processes -----------------------------------------

ROOT = Path(__file__).parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"


@dataclass
class Service:
    """A project service run as a subprocess, with its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def spawn(name: str, module: str, env: dict[str, str], directory: Path) -> Service:
    import os

    log = directory / f"{name}.log"
    stream = log.open("ab")
    process = subprocess.Popen(
        [str(PYTHON), "-m", module],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=stream,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stream.close()
    return Service(name, process, log)


def wait_until(
    check: Callable[[], bool], timeout_s: float, what: str, service: Service | None = None
) -> None:
    """Poll ``check`` until it is true; raise naming ``what`` (and the log) if not."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if service is not None and service.process.poll() is not None:
            raise RuntimeError(
                f"{service.name} exited while waiting for {what}:\n{service.tail()}"
            )
        if time.monotonic() > deadline:
            log = f":\n{service.tail()}" if service else ""
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}{log}")
        time.sleep(0.05)


@contextmanager
def controller_service(
    files: ControllerFiles, redis_url: str, directory: Path, **env: str
) -> Iterator[tuple[Service, str]]:
    """Run ``python -m controller`` on a free port; yield it and its URL."""
    import httpx

    port = free_port()
    service = spawn("controller", "controller", files.env(redis_url, port, **env), directory)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, 30, "the controller to answer /healthz", service)
        yield service, url
    finally:
        service.stop()


def write_profile(directory: Path, node_id: str, tier: str) -> Path:
    import yaml

    path = directory / f"{node_id}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "node_id": node_id,
                "address": "127.0.0.1",
                "roles": ["worker"],
                "ram_gb": 3.8,
                "cpus": 2,
                "arch": "x86_64",
                "tier": tier,
            }
        )
    )
    return path


@contextmanager
def worker_service(
    node_id: str,
    tier: str,
    files: ControllerFiles,
    redis_url: str,
    api_url: str,
    models_dir: Path,
    directory: Path,
    module: str = "worker",
    **env: str,
) -> Iterator[Service]:
    """Run ``python -m worker`` (or ``module``, a wrapper of it) for a node; yield it
    once the registry shows it consuming."""
    import httpx

    directory.mkdir(parents=True, exist_ok=True)
    worker_env = {
        "RESEARCH_NODE_PROFILE": str(write_profile(directory, node_id, tier)),
        "RESEARCH_BROKER_URL": redis_url,
        "RESEARCH_API_URL": api_url,
        "RESEARCH_WORKER_TOKEN": files.worker_token(node_id),
        "RESEARCH_MODELS_DIR": str(models_dir),
        "RESEARCH_CATALOG": str(files.catalog),
        "RESEARCH_HEARTBEAT_INTERVAL_S": "1",
        **env,
    }
    service = spawn(node_id, module, worker_env, directory)
    operator = {"Authorization": f"Bearer {files.tokens['operator']}"}

    def consuming() -> bool:
        reply = httpx.get(f"{api_url}/v1/nodes/{node_id}", headers=operator, timeout=2)
        return reply.status_code == 200 and bool(reply.json()["consuming"])

    try:
        wait_until(consuming, 60, f"worker {node_id} to register and consume", service)
        yield service
    finally:
        service.stop(timeout_s=60)
