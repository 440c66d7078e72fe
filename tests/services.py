"""Real services for tests: a redis-server of their own, started and stopped here."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


@contextmanager
def redis_server(directory: Path, *options: str) -> Iterator[RedisServer]:
    """Run redis-server on a free loopback port with ``options``; stop it after."""
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
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    server = RedisServer(port, directory, process)
    try:
        _wait_for(server)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)


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
    "file": "gemma-3-270m-q4_k_m.gguf",
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
