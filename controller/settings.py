"""The controller service's settings, read from its environment.

The controller role writes them to an environment file that systemd hands to
the service; a developer can export the same variables.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from controller.celery_config import ConfigError, RunLimits
from controller.registry import HealthPolicy

__all__ = ["ControllerSettings", "require_env"]


def require_env(env: Mapping[str, str], name: str, what: str) -> str:
    """Return the variable ``name``; raise ConfigError saying what it should hold."""
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is not set; expected {what}")
    return value


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    try:
        return float(env.get(name, default))
    except ValueError:
        raise ConfigError(f"{name}: expected a number of seconds, got {env[name]!r}") from None


def _workers(env: Mapping[str, str]) -> int:
    raw = env.get("RESEARCH_API_WORKERS", "1")
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ConfigError(f"RESEARCH_API_WORKERS: expected a whole number from 1, got {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class ControllerSettings:
    redis_url: str
    catalog_file: Path
    tokens_file: Path
    worker_secret_file: Path
    host: str = "127.0.0.1"
    port: int = 8080
    # API processes; each serves requests on its own core. The registry and
    # runs live in Redis, so the processes share nothing else.
    workers: int = 1
    max_body_bytes: int = 64 * 1024
    policy: HealthPolicy = field(default_factory=HealthPolicy)
    limits: RunLimits = field(default_factory=RunLimits)

    @property
    def keep_alive_s(self) -> int:
        """How long the API keeps an idle connection open: past two heartbeat
        intervals, so that a worker's next heartbeat finds its connection open
        instead of opening a new one (uvicorn's default, 5 s, is the interval)."""
        return max(5, math.ceil(2 * self.policy.interval_s) + 1)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ControllerSettings:
        """Read RESEARCH_* variables; raise ConfigError naming a missing one."""
        env = os.environ if env is None else env
        policy = HealthPolicy(
            interval_s=_number(env, "RESEARCH_HEARTBEAT_INTERVAL_S", 5.0),
            ttl_s=_number(env, "RESEARCH_HEARTBEAT_TTL_S", 15.0),
            grace_s=_number(env, "RESEARCH_HEARTBEAT_GRACE_S", 15.0),
        )
        return cls(
            redis_url=require_env(env, "RESEARCH_REDIS_URL", "redis://user:password@host:6379/0"),
            catalog_file=Path(require_env(env, "RESEARCH_CATALOG", "the model catalog file")),
            tokens_file=Path(require_env(env, "RESEARCH_TOKENS", "the tokens file")),
            worker_secret_file=Path(
                require_env(env, "RESEARCH_WORKER_SECRET_FILE", "the worker secret file")
            ),
            host=env.get("RESEARCH_API_HOST", "127.0.0.1"),
            port=int(_number(env, "RESEARCH_API_PORT", 8080)),
            workers=_workers(env),
            policy=policy,
            limits=RunLimits.from_env(dict(env)),
        )
