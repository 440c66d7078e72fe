"""The worker's settings, read from its environment.

The worker role writes them to an environment file that systemd hands to the
service (``/etc/research-orchestration/worker.env``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from controller.catalog import Catalog, load_catalog
from controller.celery_config import ConfigError, RunLimits
from controller.profiles import NodeProfile, ProfileError, load_profile
from controller.settings import require_env

__all__ = ["WorkerSettings"]


def _token(env: Mapping[str, str]) -> str:
    if env.get("RESEARCH_WORKER_TOKEN"):
        return env["RESEARCH_WORKER_TOKEN"].strip()
    path = Path(require_env(env, "RESEARCH_WORKER_TOKEN_FILE", "the worker's token file"))
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"RESEARCH_WORKER_TOKEN_FILE: cannot read {path}: {exc}") from None


@dataclass(frozen=True)
class WorkerSettings:
    profile: NodeProfile
    broker_url: str
    api_url: str
    token: str
    models_dir: Path
    catalog: Catalog
    queues: tuple[str, ...]
    limits: RunLimits
    heartbeat_interval_s: float = 5.0
    shutdown_grace_s: float = 30.0
    command_allow: tuple[str, ...] = ()

    @property
    def node_id(self) -> str:
        return self.profile.node_id

    @property
    def hostname(self) -> str:
        """The Celery hostname: the node id as host part."""
        return f"celery@{self.profile.node_id}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        """Read RESEARCH_* variables; raise ConfigError naming what is wrong."""
        env = os.environ if env is None else env
        profile_path = Path(require_env(env, "RESEARCH_NODE_PROFILE", "this node's profile file"))
        try:
            profile = load_profile(profile_path)
        except ProfileError as exc:
            raise ConfigError(str(exc)) from None
        queues = tuple(q for q in env.get("RESEARCH_QUEUES", "").split(",") if q.strip())
        try:
            interval = float(env.get("RESEARCH_HEARTBEAT_INTERVAL_S", 5.0))
            grace = float(env.get("RESEARCH_SHUTDOWN_GRACE_S", 30.0))
        except ValueError as exc:
            raise ConfigError(f"heartbeat interval and shutdown grace: {exc}") from None
        catalog_file = Path(require_env(env, "RESEARCH_CATALOG", "the model catalog file"))
        return cls(
            profile=profile,
            broker_url=require_env(
                env, "RESEARCH_BROKER_URL", "redis://user:password@host:6379/0"
            ),
            api_url=require_env(env, "RESEARCH_API_URL", "http://controller:8080").rstrip("/"),
            token=_token(env),
            models_dir=Path(
                env.get("RESEARCH_MODELS_DIR", "/var/lib/research-orchestration/models")
            ),
            catalog=load_catalog(catalog_file),
            queues=queues or tuple(profile.queues()),
            limits=RunLimits.from_env(dict(env)),
            heartbeat_interval_s=interval,
            shutdown_grace_s=grace,
            command_allow=tuple(
                p for p in env.get("RESEARCH_COMMAND_ALLOW", "").split(":") if p.strip()
            ),
        )
