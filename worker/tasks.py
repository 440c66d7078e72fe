"""The run task: honour cancellation, count attempts, execute, return the result.

Celery requeues a run whose worker child dies (``task_reject_on_worker_lost``)
and the controller requeues the run of a lost node; a run that kills its
worker every time would loop. Each start is therefore counted in the run's
record (``run:<id>``, field ``attempts``); a start beyond ``max_attempts`` fails
the run with that reason instead of executing it again. A run handed back by
a worker that shuts down does not count as an attempt.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import redis
from celery import Celery, Task, states

from controller.celery_config import RUN_TASK
from controller.metrics import observe, record_event, record_summary
from worker.config import WorkerSettings
from worker.execution import execute_run, refused_result

__all__ = ["count_attempt", "hand_back", "register_run_task"]

logger = logging.getLogger(__name__)


def count_attempt(client: redis.Redis, run_id: str, expires_s: int) -> int:
    """Record one more start of ``run_id``; return how many starts count."""
    key = f"run:{run_id}"
    with client.pipeline() as pipe:
        pipe.hincrby(key, "attempts", 1)
        pipe.expire(key, expires_s)
        attempts, _ = pipe.execute()
    return int(attempts)


def hand_back(client: redis.Redis, run_ids: Iterable[str]) -> None:
    """Uncount the current start of runs this worker hands back at shutdown.

    A run that finished before the shutdown (its result is stored) was not
    handed back and keeps its count.
    """
    for run_id in run_ids:
        meta = client.get(f"celery-task-meta-{run_id}")
        if meta and json.loads(meta).get("status") in states.READY_STATES:
            continue
        client.hincrby(f"run:{run_id}", "attempts", -1)
        logger.info("run %s: handed back to its queue at shutdown", run_id)


def account_start(client: redis.Redis, run_id: str, queue: str) -> None:
    """Count a run's start and how long it waited since submission."""
    record_event(client, "started", queue)
    submitted = client.hget(f"run:{run_id}", "submitted_at")
    if submitted:
        observe(client, "wait", queue, max(0.0, time.time() - float(submitted)))


def account_finish(client: redis.Redis, node_id: str, queue: str, result: dict[str, Any]) -> None:
    """Count a run's end, its duration, and keep its telemetry summary."""
    record_event(client, "succeeded" if result["status"] == "succeeded" else "failed", queue)
    timings = result.get("timings") or {}
    if timings.get("total_s") is not None:
        observe(client, "duration", queue, float(timings["total_s"]))
    summary = dict((result.get("telemetry") or {}).get("summary") or {})
    summary["tokens_per_s"] = timings.get("tokens_per_s")
    record_summary(client, node_id, summary)


def _command_refusal(spec: dict[str, Any], allowed: tuple[str, ...]) -> str | None:
    if spec.get("runtime") != "command":
        return None
    argv = (spec.get("params") or {}).get("argv") or [""]
    if argv[0] in allowed:
        return None
    listed = ", ".join(allowed) or "none (set RESEARCH_COMMAND_ALLOW)"
    return f"program {argv[0]!r} is not allowed on this node; allowed: {listed}"


def register_run_task(app: Celery, settings: WorkerSettings) -> Task:
    """Define ``research.run`` on ``app`` for this node and return it."""

    @app.task(name=RUN_TASK, bind=True)  # type: ignore[untyped-decorator]
    def run(task: Task, spec: dict[str, Any]) -> dict[str, Any]:
        run_id = str(task.request.id)
        spec = {**spec, "run_id": run_id}
        client: redis.Redis = app.backend.client
        queue = str((task.request.delivery_info or {}).get("routing_key") or "unknown")
        if client.hget(f"run:{run_id}", "cancelled") == b"1":
            return refused(spec, "Cancelled", "the run was cancelled before it started")
        attempts = count_attempt(client, run_id, settings.limits.result_expires_s)
        account_start(client, run_id, queue)
        result = execute(spec, attempts)
        account_finish(client, settings.node_id, queue, result)
        return result

    def refused(spec: dict[str, Any], kind: str, message: str) -> dict[str, Any]:
        return dict(refused_result(spec, settings.node_id, kind, message))

    def execute(spec: dict[str, Any], attempts: int) -> dict[str, Any]:
        run_id, limit = spec["run_id"], settings.limits.max_attempts
        if attempts > limit:
            logger.error("run %s: attempt %d of at most %d; failing it", run_id, attempts, limit)
            return refused(
                spec,
                "WorkerLost",
                f"the run's worker was lost on each of {limit} "
                "attempts; it is failed instead of being tried again",
            )
        if (refusal := _command_refusal(spec, settings.command_allow)) is not None:
            return refused(spec, "CommandNotAllowed", refusal)
        logger.info("run %s: attempt %d on %s", run_id, attempts, settings.node_id)
        return dict(
            execute_run(spec, models_dir=Path(settings.models_dir), node_id=settings.node_id)
        )

    return run
