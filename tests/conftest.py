"""Fixtures shared by every test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.services import RedisServer, redis_server

pytest_plugins = ["lab.pytest_plugin", "tests.models"]


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
