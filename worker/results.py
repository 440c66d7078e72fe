"""The result of a run, as a worker returns it: a JSON-serialisable dict.

Fields of ``RunResult``:

- ``run_id``, ``node_id``, ``runtime``, ``model``, ``model_file``: what ran
  where, as the spec named it.
- ``status``: ``succeeded`` or ``failed``; ``error``: None, or the failure's
  ``type`` (an exception class name) and ``message``.
- ``output``: what the runtime produced (None when it failed before any).
- ``model_cached``: True when a model already loaded in the worker process
  was reused, False when it was loaded for this run, None without a model.
- ``tokens``: ``prompt`` and ``completion`` tokens, summed over prompts.
- ``timings`` in seconds: ``load_s``, ``first_token_s`` and
  ``tokens_per_s`` (None where the runtime has none), and ``total_s``, the
  runtime's wall time including the load.
- ``telemetry``: ``enabled``, ``interval_s``, ``series`` (samples),
  ``summary`` (None when nothing was sampled) and ``error`` (None, or why
  the machine could not be sampled; the run goes on without telemetry).
- ``started_at``, ``finished_at``: ISO 8601 in UTC.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from worker.telemetry import Sample, TelemetrySummary

__all__ = [
    "FAILED",
    "SUCCEEDED",
    "ErrorInfo",
    "RunResult",
    "TelemetryReport",
    "Timings",
    "TokenCounts",
]

SUCCEEDED: Literal["succeeded"] = "succeeded"
FAILED: Literal["failed"] = "failed"


class ErrorInfo(TypedDict):
    type: str
    message: str


class TokenCounts(TypedDict):
    prompt: int
    completion: int


class Timings(TypedDict):
    load_s: float | None
    first_token_s: float | None
    tokens_per_s: float | None
    total_s: float | None


class TelemetryReport(TypedDict):
    enabled: bool
    interval_s: float | None
    series: list[Sample]
    summary: TelemetrySummary | None
    error: str | None


class RunResult(TypedDict):
    run_id: str
    node_id: str
    runtime: str
    model: str | None
    model_file: str | None
    status: Literal["succeeded", "failed"]
    error: ErrorInfo | None
    output: Any
    model_cached: bool | None
    tokens: TokenCounts
    timings: Timings
    telemetry: TelemetryReport
    started_at: str
    finished_at: str
