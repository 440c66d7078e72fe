"""Runs: submission through the dispatcher, status, results and cancellation.

A run is a Celery task (``research.run``) whose id is the run id. The
controller keeps a small record of each run in Redis (``run:<id>``: who
submitted it, where it was sent and why) beside Celery's own result, which
the worker writes. Both expire after the configured result lifetime.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import redis
from celery import Celery

from controller.auth import Identity
from controller.catalog import Catalog
from controller.celery_config import RUN_TASK, RunLimits
from controller.dispatcher import Decision, Dispatcher
from controller.metrics import record_event
from controller.pending import pending_reason
from controller.queues import queue_figures
from controller.registry import text
from controller.schemas import RunRequest
from controller.tiers import tier_model

__all__ = ["RunRefused", "RunService", "Submitted", "UnknownRun"]

logger = logging.getLogger(__name__)

# Celery state -> the run's state as researchers see it.
_STATES = {
    "PENDING": "queued",
    "RECEIVED": "queued",
    "RETRY": "queued",
    "STARTED": "running",
    "SUCCESS": "succeeded",
    "FAILURE": "failed",
    "REVOKED": "cancelled",
}
FINAL_STATES = ("succeeded", "failed", "cancelled")


class RunRefused(Exception):
    """No available node could serve the run; ``decision`` says why."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.reason)
        self.decision = decision


class UnknownRun(LookupError):
    """A run id the controller has no record of (never submitted, or expired)."""


@dataclass(frozen=True)
class Submitted:
    run_id: str
    queue: str
    decision: Decision


class RunService:
    """Submits runs to the queue the dispatcher picks and reports on them."""

    def __init__(
        self,
        client: redis.Redis,
        app: Celery,
        dispatcher: Dispatcher,
        catalog: Catalog,
        limits: RunLimits,
    ) -> None:
        self.redis = client
        self.app = app
        self.dispatcher = dispatcher
        self.catalog = catalog
        self.limits = limits

    def explain(self, request: RunRequest) -> Decision:
        """Return the full decision for ``request`` without queueing anything."""
        return self.dispatcher.decide(request.model, request.ram_gb, request.gpu, explain=True)

    def submit(self, request: RunRequest, by: Identity) -> Submitted:
        """Queue a run on the queue the dispatcher picks; raise RunRefused."""
        decision = self.dispatcher.decide(request.model, request.ram_gb, request.gpu)
        if decision.queue is None:
            raise RunRefused(decision)
        run_id = str(uuid.uuid4())
        spec = self._spec(run_id, request)
        record: dict[str, str] = {
            "run_id": run_id,
            "queue": decision.queue,
            "model": request.model or "",
            "runtime": spec["runtime"],
            "submitted_at": repr(time.time()),
            "submitted_by": by.name,
            "reason": decision.reason,
            "labels": json.dumps(request.labels),
        }
        key = f"run:{run_id}"
        with self.redis.pipeline() as pipe:
            pipe.hset(key, mapping=cast(Mapping[Any, Any], record))
            pipe.expire(key, self.limits.result_expires_s)
            record_event(pipe, "submitted", decision.queue)
            pipe.execute()
        ceiling = self.limits.time_limit_s
        time_limit = min(request.time_limit_s or ceiling, ceiling)
        self.app.send_task(
            RUN_TASK,
            args=[spec],
            task_id=run_id,
            queue=decision.queue,
            routing_key=decision.queue,
            time_limit=time_limit,
            soft_time_limit=max(1, time_limit - 5),
            # What Celery logs of the run on the worker: its id and runtime, not
            # the prompts (and rendering the whole spec costs each submission).
            argsrepr=f"(run {run_id}: {' '.join(filter(None, (spec['runtime'], spec['model'])))})",
            kwargsrepr="{}",
        )
        logger.info("run %s: queued on %s for %s", run_id, decision.queue, by.name)
        return Submitted(run_id, decision.queue, decision)

    def _spec(self, run_id: str, request: RunRequest) -> dict[str, Any]:
        entry = self.catalog.get(request.model) if request.model else None
        runtime = request.runtime or (
            entry.runtime if entry else "command" if request.argv else "noop"
        )
        params: dict[str, Any] = {"noop": {"sleep_s": request.sleep_s}}.get(runtime, {})
        if runtime == "llama_cpp":
            params = {
                "prompts": request.all_prompts(),
                "max_tokens": request.max_tokens,
                "temperature": request.temperature,
                "seed": request.seed,
            }
        elif runtime == "command":
            params = {"argv": list(request.argv or [])}
        return {
            "run_id": run_id,
            "runtime": runtime,
            "model": entry.name if entry else None,
            "model_file": entry.file if entry else None,
            "model_sha256": entry.sha256 if entry else None,
            "params": params,
            "telemetry": {"enabled": True, "interval_s": request.telemetry_interval_s},
        }

    def status(self, run_id: str) -> dict[str, Any]:
        """Return a run's state, node and, once finished, its result."""
        record = self._record(run_id)
        meta = self._celery_meta(run_id)
        state = _STATES.get(meta.get("status", "PENDING"), "queued")
        if record.get("cancelled") == "1" and state == "queued":
            state = "cancelled"
        status: dict[str, Any] = {
            "run_id": run_id,
            "state": state,
            "queue": record["queue"],
            "model": record.get("model") or None,
            "runtime": record.get("runtime"),
            "submitted_at": float(record["submitted_at"]),
            "submitted_by": record.get("submitted_by"),
            "reason": record.get("reason"),
            "labels": json.loads(record.get("labels") or "{}"),
            "node_id": _node_of(meta),
            "finished_at": meta.get("date_done"),
            "result": None,
            "error": None,
        }
        result = meta.get("result")
        if state == "succeeded" and isinstance(result, dict):
            status["result"] = result
            if result.get("status") == "failed":
                status["state"], status["error"] = "failed", result.get("error")
        elif state == "failed":
            status["error"] = _error_of(result)
        elif state == "queued":
            depth = int(self.redis.llen(record["queue"]))
            status["queue_depth"] = depth
            status["waiting_s"] = round(time.time() - status["submitted_at"], 3)
            status["pending"] = pending_reason(
                self.dispatcher, record["queue"], depth, status["model"]
            )
        return status

    def cancel(self, run_id: str, by: Identity) -> dict[str, Any]:
        """Cancel a queued or running run; a finished one is left as it is."""
        status = self.status(run_id)
        if status["state"] in FINAL_STATES:
            return status
        self.redis.hset(f"run:{run_id}", mapping={"cancelled": "1", "cancelled_by": by.name})
        terminate = status["state"] == "running"
        self.app.control.revoke(run_id, terminate=terminate, signal="SIGTERM")
        logger.info("run %s: cancelled by %s (%s)", run_id, by.name, status["state"])
        return {**status, "state": "cancelled"}

    def queues(self) -> list[dict[str, Any]]:
        """Return each queue's depth and how long its oldest run has waited."""
        return [
            {
                "queue": name,
                "depth": depth,
                "oldest_wait_s": wait,
                "pending": pending_reason(self.dispatcher, name, depth) if depth else None,
            }
            for name, depth, wait in queue_figures(self.redis, tier_model().queues)
        ]

    def _record(self, run_id: str) -> dict[str, str]:
        raw = self.redis.hgetall(f"run:{run_id}")
        if not raw:
            raise UnknownRun(run_id)
        return {text(k): text(v) for k, v in raw.items()}

    def _celery_meta(self, run_id: str) -> dict[str, Any]:
        raw = self.redis.get(self.app.backend.get_key_for_task(run_id))
        return dict(json.loads(raw)) if raw else {}


def _node_of(meta: dict[str, Any]) -> str | None:
    worker = meta.get("worker") or (meta.get("result") or {}).get("hostname")
    if not isinstance(worker, str):
        return None
    return worker.rsplit("@", 1)[-1]


def _error_of(result: Any) -> dict[str, Any]:
    if isinstance(result, dict) and "exc_type" in result:
        message = result.get("exc_message")
        if isinstance(message, list | tuple):
            message = " ".join(str(part) for part in message)
        return {"type": result["exc_type"], "message": str(message)}
    return {"type": "unknown", "message": str(result)}
