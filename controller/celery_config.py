"""The Celery application both sides share: queues, serialisation, and the
settings that decide whether a run can be lost.

The controller publishes runs with it; every worker consumes with it. Each
setting below is chosen against a failure measured with Redis as broker:

- JSON only, everywhere: a pickled message is refused, never executed.
- Late acknowledgement, prefetch off and a multiplier of 1: a worker with
  concurrency 1 holds at most the run it executes, and a run whose worker
  dies is still in the broker.
- ``task_reject_on_worker_lost``: a run whose worker child is killed goes
  back to its queue instead of being acknowledged and lost. The worker counts
  attempts (see worker.tasks) so that a run that kills its worker every time
  is failed after ``max_attempts`` instead of looping.
- The run time limit is below the broker's visibility timeout, so a run is
  never delivered a second time for merely running long.
- ``queue_order_strategy=priority``: a worker reads its queues in the order
  its tier gives them (own tier first, then smaller ones).

The controller reads results from Redis itself and never waits on one, so
its app (``waits_for_results=False``) does not subscribe to each run's result
channel as it publishes the run, which Celery's Redis backend otherwise does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from celery import Celery
from celery.backends.redis import RedisBackend
from kombu.entity import Exchange, Queue

from controller.tiers import tier_model

__all__ = ["RUN_TASK", "ConfigError", "RunLimits", "make_celery"]

RUN_TASK = "research.run"
EXCHANGE = Exchange("research", type="direct")
# A run is never redelivered for running long: the time limit plus this
# margin (for the worker to write its result) stays below the timeout.
_VISIBILITY_MARGIN_S = 300


class ConfigError(ValueError):
    """Settings that would lose or duplicate runs."""


@dataclass(frozen=True)
class RunLimits:
    """Bounds on a run, identical on controller and workers."""

    time_limit_s: int = 3600
    visibility_timeout_s: int = 7200
    max_attempts: int = 3
    result_expires_s: int = 7 * 24 * 3600

    def check(self) -> RunLimits:
        """Return self; raise ConfigError if runs could be duplicated or loop."""
        if self.time_limit_s <= 0 or self.max_attempts < 1:
            raise ConfigError(
                "run time limit must be above 0 s and max attempts at least 1, got "
                f"{self.time_limit_s} s and {self.max_attempts}"
            )
        if self.time_limit_s + _VISIBILITY_MARGIN_S > self.visibility_timeout_s:
            raise ConfigError(
                f"run time limit {self.time_limit_s} s + {_VISIBILITY_MARGIN_S} s must stay "
                f"below the broker visibility timeout {self.visibility_timeout_s} s, or a long "
                "run is delivered twice; raise RESEARCH_VISIBILITY_TIMEOUT_S or lower "
                "RESEARCH_RUN_TIME_LIMIT_S"
            )
        return self

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> RunLimits:
        """Read RESEARCH_RUN_TIME_LIMIT_S, RESEARCH_VISIBILITY_TIMEOUT_S,
        RESEARCH_MAX_ATTEMPTS and RESEARCH_RESULT_EXPIRES_S, with defaults."""
        env = dict(os.environ if env is None else env)
        defaults = cls()
        try:
            limits = cls(
                time_limit_s=int(env.get("RESEARCH_RUN_TIME_LIMIT_S", defaults.time_limit_s)),
                visibility_timeout_s=int(
                    env.get("RESEARCH_VISIBILITY_TIMEOUT_S", defaults.visibility_timeout_s)
                ),
                max_attempts=int(env.get("RESEARCH_MAX_ATTEMPTS", defaults.max_attempts)),
                result_expires_s=int(
                    env.get("RESEARCH_RESULT_EXPIRES_S", defaults.result_expires_s)
                ),
            )
        except ValueError as exc:
            raise ConfigError(f"run limits must be whole numbers of seconds: {exc}") from None
        return limits.check()


def task_queues() -> list[Queue]:
    """Return a kombu Queue per cluster queue; each name is also its Redis key."""
    return [Queue(name, EXCHANGE, routing_key=name) for name in tier_model().queues]


class PublishingBackend(RedisBackend):  # type: ignore[misc]
    """The Redis result backend of a process that publishes runs but never waits
    on a result through Celery: sending a run subscribes to nothing."""

    def on_task_call(self, producer: Any, task_id: str) -> None:
        return None


def make_celery(
    broker_url: str, limits: RunLimits | None = None, waits_for_results: bool = True
) -> Celery:
    """Return the configured Celery app; raise ConfigError for unsafe limits.

    Redis is both broker and result backend. An app that publishes runs and
    reads their results from Redis itself passes ``waits_for_results=False``.
    """
    limits = (limits or RunLimits()).check()
    backend = broker_url if waits_for_results else f"{__name__}:PublishingBackend+{broker_url}"
    app = Celery("research", broker=broker_url, backend=backend, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        event_serializer="json",
        task_queues=task_queues(),
        task_default_queue=tier_model().any_queue,
        task_default_exchange=EXCHANGE.name,
        task_create_missing_queues=False,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        task_track_started=True,
        task_time_limit=limits.time_limit_s,
        task_soft_time_limit=max(1, limits.time_limit_s - 10),
        result_expires=limits.result_expires_s,
        result_extended=True,
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=True,
        worker_concurrency=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        # A broker that vanishes without closing the connection (a cut
        # network) is noticed: kombu drops a BRPOP overdue by more than the
        # health check interval, and no command waits longer than the timeout.
        broker_transport_options={
            "visibility_timeout": limits.visibility_timeout_s,
            "queue_order_strategy": "priority",
            "health_check_interval": 10,
            "socket_timeout": 30,
            "socket_connect_timeout": 10,
            "socket_keepalive": True,
        },
        result_backend_transport_options={"health_check_interval": 10},
        redis_socket_timeout=30,
        redis_socket_connect_timeout=10,
        redis_socket_keepalive=True,
        redis_backend_health_check_interval=10,
    )
    app.conf.research_limits = limits
    return app
