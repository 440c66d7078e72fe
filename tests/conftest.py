"""Fixtures shared by every test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.models import GEMMA_CATALOG_FILE, gemma_model
from tests.services import GEMMA, RedisServer, redis_server

pytest_plugins = ["lab.pytest_plugin"]


@pytest.fixture(scope="session")
def redis_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of the test session's own, on a free loopback port."""
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_client(redis_service: RedisServer) -> Iterator[redis.Redis]:
    """A client of the session's Redis, emptied before each test."""
    client = redis_service.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).parents[1]


@pytest.fixture(scope="session")
def gemma_model_path() -> Path:
    """The Gemma 3 270M GGUF file, assembled once and verified by sha256."""
    return gemma_model()


@pytest.fixture(scope="session")
def models_dir(gemma_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A node's models directory: the Gemma file under the catalog's name, with
    the checksum sidecar a verified pull leaves beside it."""
    directory = tmp_path_factory.mktemp("models")
    (directory / GEMMA_CATALOG_FILE).symlink_to(gemma_model_path)
    (directory / f"{GEMMA_CATALOG_FILE}.sha256").write_text(f"{GEMMA['sha256']}\n")
    return directory
