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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from celery import Celery, Task, states

from controller.celery_config import RUN_TASK
from controller.metrics import observe, record_event, record_summary
from worker.config import WorkerSettings
from worker.execution import execute_run, refused_result

__all__ = ["Start", "begin", "finish", "hand_back", "register_run_task"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Start:
    """What the run's record says as the run starts on this worker."""

    cancelled: bool
    attempts: int


def begin(client: redis.Redis, run_id: str, queue: str, expires_s: int) -> Start:
    """Count this start of ``run_id`` and its wait since submission, unless it
    was cancelled while it waited; two round trips."""
    key = f"run:{run_id}"
    cancelled, submitted = client.hmget(key, ["cancelled", "submitted_at"])
    if cancelled == b"1":
        return Start(cancelled=True, attempts=0)
    with client.pipeline(transaction=False) as pipe:
        pipe.hincrby(key, "attempts", 1)
        pipe.expire(key, expires_s)
        record_event(pipe, "started", queue)
        if submitted:
            observe(pipe, "wait", queue, max(0.0, time.time() - float(submitted)))
        attempts = pipe.execute()[0]
    return Start(cancelled=False, attempts=int(attempts))


def finish(client: redis.Redis, node_id: str, queue: str, result: dict[str, Any]) -> None:
    """Count a run's end, its duration, and keep its telemetry summary; one round trip."""
    timings = result.get("timings") or {}
    summary = dict((result.get("telemetry") or {}).get("summary") or {})
    summary["tokens_per_s"] = timings.get("tokens_per_s")
    with client.pipeline(transaction=False) as pipe:
        record_event(pipe, "succeeded" if result["status"] == "succeeded" else "failed", queue)
        if timings.get("total_s") is not None:
            observe(pipe, "duration", queue, float(timings["total_s"]))
        record_summary(pipe, node_id, summary)
        pipe.execute()


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

    # Celery logs each result it stores; the telemetry series makes that repr
    # long, and the worker logs its own line per run, so Celery's is kept short.
    @app.task(name=RUN_TASK, bind=True, resultrepr_maxsize=160)  # type: ignore[untyped-decorator]
    def run(task: Task, spec: dict[str, Any]) -> dict[str, Any]:
        run_id = str(task.request.id)
        spec = {**spec, "run_id": run_id}
        client: redis.Redis = app.backend.client
        queue = str((task.request.delivery_info or {}).get("routing_key") or "unknown")
        start = begin(client, run_id, queue, settings.limits.result_expires_s)
        if start.cancelled:
            return refused(spec, "Cancelled", "the run was cancelled before it started")
        result = execute(spec, start.attempts)
        finish(client, settings.node_id, queue, result)
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
