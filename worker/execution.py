"""Executing one run on this node: the spec in, a JSON-serialisable result out.

``execute_run`` is what the worker's task calls. It raises only for a spec
that is malformed (ValueError); everything that can go wrong with a
well-formed spec (an unknown runtime, a model file not on disk, params the
runtime refuses, the runtime raising, a harness failing) comes back as a
result with status ``failed`` and the reason, so that the researcher sees it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from worker.results import FAILED, SUCCEEDED, ErrorInfo, RunResult, TelemetryReport
from worker.runtimes import RunError, RunOutput, Runtime, get_runtime
from worker.spec import RunSpec, TelemetrySpec, parse_spec
from worker.telemetry import TelemetryError, TelemetrySampler

__all__ = [
    "ModelFileMissingError",
    "ModelRequiredError",
    "OutputNotSerialisableError",
    "execute_run",
    "refused_result",
]

logger = logging.getLogger(__name__)


class ModelFileMissingError(RunError, FileNotFoundError):
    """A run whose model file is not in this node's models directory."""


class ModelRequiredError(RunError):
    """A run of a runtime that needs a model, naming none."""


class OutputNotSerialisableError(RunError):
    """A runtime output that JSON cannot carry back."""


@dataclass
class _Outcome:
    """What running the runtime gave: its output, the failure, the time."""

    output: RunOutput | None = None
    failure: BaseException | None = None
    total_s: float | None = None


def execute_run(spec: Mapping[str, Any], models_dir: Path, node_id: str) -> RunResult:
    """Execute the run ``spec`` on this node and return its result.

    The model file is looked up in ``models_dir``. Raises ValueError only
    for a malformed spec (see ``worker.spec.parse_spec``); every other
    problem is a result with status ``failed``.
    """
    run = parse_spec(spec)
    started_at = _utc_now()
    logger.info("run %s: starting %s on %s", run.run_id, run.runtime, node_id)
    try:
        runtime = get_runtime(run.runtime)
        model_path = _model_path(run, runtime, Path(models_dir), node_id)
        runtime.check(run.params)
    except RunError as exc:
        outcome, telemetry = _Outcome(failure=exc), _telemetry_report(run, None, None)
    else:
        outcome, telemetry = _run_measured(run, runtime, model_path)
    result = _result(run, node_id, outcome, telemetry, started_at)
    logger.info(
        "run %s: %s in %.2f s%s",
        run.run_id,
        result["status"],
        outcome.total_s or 0.0,
        f": {result['error']['message']}" if result["error"] else "",
    )
    return result


def refused_result(
    spec: Mapping[str, Any], node_id: str, error_type: str, message: str
) -> RunResult:
    """Return the failed result of a run this node did not execute (cancelled,
    or refused), shaped as ``execute_run`` shapes results.

    The spec is read leniently: it may be the malformed one being refused.
    """
    run = RunSpec(
        run_id=_text_or_none(spec.get("run_id")) or "",
        runtime=_text_or_none(spec.get("runtime")) or "",
        model=_text_or_none(spec.get("model")),
        model_file=_text_or_none(spec.get("model_file")),
        telemetry=TelemetrySpec(enabled=False),
    )
    result = _result(run, node_id, _Outcome(), _telemetry_report(run, None, None), _utc_now())
    result["status"] = FAILED
    result["error"] = {"type": error_type, "message": message}
    logger.info("run %s: refused on %s: %s", run.run_id, node_id, message)
    return result


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _model_path(run: RunSpec, runtime: Runtime, models_dir: Path, node_id: str) -> Path | None:
    """Return the run's model file, or None when it names none.

    Raises ModelRequiredError when the runtime needs a model and the run
    names none; ModelFileMissingError when the file is not on disk.
    """
    if run.model_file is None:
        if runtime.needs_model:
            raise ModelRequiredError(
                f"runtime {runtime.name} needs a model_file; run {run.run_id} names none"
            )
        return None
    path = models_dir / run.model_file
    if not path.is_file():
        model = f" of model {run.model}" if run.model else ""
        raise ModelFileMissingError(
            f"model file {run.model_file}{model} is not in {models_dir} on node {node_id}"
        )
    return path


def _run_measured(
    run: RunSpec, runtime: Runtime, model_path: Path | None
) -> tuple[_Outcome, TelemetryReport]:
    """Run the runtime inside the telemetry sampler, catching its failure."""
    sampler, telemetry_error = _start_sampler(run)
    started = time.perf_counter()
    outcome = _Outcome()
    try:
        outcome.output = runtime.run(run.params, model_path)
        outcome.failure = outcome.output.failure or _not_serialisable(outcome.output)
    except Exception as exc:
        # A RunError is a reason the runtime names; anything else wants its traceback.
        unexpected = not isinstance(exc, RunError)
        logger.warning("run %s: %s failed: %r", run.run_id, runtime.name, exc, exc_info=unexpected)
        outcome.failure = exc
    finally:
        outcome.total_s = time.perf_counter() - started
        if sampler is not None:
            sampler.stop()
    return outcome, _telemetry_report(run, sampler, telemetry_error)


def _start_sampler(run: RunSpec) -> tuple[TelemetrySampler | None, str | None]:
    """Return a started sampler, or None and why the machine cannot be sampled."""
    if not run.telemetry.enabled:
        return None, None
    sampler = TelemetrySampler(run.telemetry.interval_s)
    try:
        sampler.start()
    except TelemetryError as exc:
        logger.warning("run %s: running without telemetry: %s", run.run_id, exc)
        return None, str(exc)
    return sampler, None


def _not_serialisable(output: RunOutput) -> OutputNotSerialisableError | None:
    try:
        json.dumps(output.output)
    except (TypeError, ValueError) as exc:
        output.output = None
        return OutputNotSerialisableError(f"the runtime's output is not JSON: {exc}")
    return None


def _telemetry_report(
    run: RunSpec, sampler: TelemetrySampler | None, error: str | None
) -> TelemetryReport:
    enabled = run.telemetry.enabled
    return {
        "enabled": enabled,
        "interval_s": run.telemetry.interval_s if enabled else None,
        "series": sampler.series if sampler else [],
        "summary": sampler.summary() if sampler else None,
        "error": error,
    }


def _result(
    run: RunSpec,
    node_id: str,
    outcome: _Outcome,
    telemetry: TelemetryReport,
    started_at: str,
) -> RunResult:
    output = outcome.output or RunOutput()
    return {
        "run_id": run.run_id,
        "node_id": node_id,
        "runtime": run.runtime,
        "model": run.model,
        "model_file": run.model_file,
        "status": FAILED if outcome.failure else SUCCEEDED,
        "error": _error_info(outcome.failure),
        "output": output.output,
        "model_cached": output.model_cached,
        "tokens": {"prompt": output.prompt_tokens, "completion": output.completion_tokens},
        "timings": {
            "load_s": output.load_s,
            "first_token_s": output.first_token_s,
            "tokens_per_s": output.tokens_per_s,
            "total_s": outcome.total_s,
        },
        "telemetry": telemetry,
        "started_at": started_at,
        "finished_at": _utc_now(),
    }


def _error_info(failure: BaseException | None) -> ErrorInfo | None:
    if failure is None:
        return None
    return {"type": type(failure).__name__, "message": str(failure) or type(failure).__name__}


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
