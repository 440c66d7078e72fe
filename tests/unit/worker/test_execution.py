"""Tests of worker.execution: a spec in, a JSON-serialisable result out."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.models import GEMMA_CATALOG_FILE, GEMMA_MODEL_NAME
from worker.execution import execute_run, refused_result
from worker.results import RunResult

NODE = "lab-micro-1"


def _spec(runtime: str, params: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    return {"run_id": "r-test", "runtime": runtime, "params": params or {}, **fields}


def _round_trip(result: RunResult) -> RunResult:
    """Return the result as it comes back from JSON; fail if it cannot."""
    carried: RunResult = json.loads(json.dumps(result, allow_nan=False))
    assert carried == result
    return carried


def test_a_noop_run_succeeds_with_its_echo_and_telemetry(tmp_path: Path) -> None:
    """A run that sleeps 0.3 s succeeds, lasts that long, and is sampled."""
    spec = _spec("noop", {"sleep_s": 0.3, "echo": "ok"}, telemetry={"interval_s": 0.1})
    result = _round_trip(execute_run(spec, tmp_path, NODE))
    assert (result["status"], result["error"], result["output"]) == ("succeeded", None, "ok")
    assert (result["run_id"], result["node_id"], result["runtime"]) == ("r-test", NODE, "noop")
    assert result["timings"]["total_s"] is not None and result["timings"]["total_s"] >= 0.3
    assert result["tokens"] == {"prompt": 0, "completion": 0}
    assert result["model_cached"] is None
    assert len(result["telemetry"]["series"]) >= 4
    assert result["telemetry"]["summary"] is not None


def test_times_are_iso_8601_in_utc(tmp_path: Path) -> None:
    """started_at and finished_at are UTC ISO 8601, in order."""
    result = execute_run(_spec("noop", {"sleep_s": 0.05}), tmp_path, NODE)
    started = datetime.fromisoformat(result["started_at"])
    finished = datetime.fromisoformat(result["finished_at"])
    assert started.utcoffset() == timedelta(0)
    assert finished - started >= timedelta(seconds=0.05)


def test_telemetry_can_be_turned_off(tmp_path: Path) -> None:
    """With telemetry disabled the result has no series and no summary."""
    spec = _spec("noop", telemetry={"enabled": False})
    telemetry = execute_run(spec, tmp_path, NODE)["telemetry"]
    assert telemetry == {
        "enabled": False,
        "interval_s": None,
        "series": [],
        "summary": None,
        "error": None,
    }


def test_an_unknown_runtime_is_a_failed_result(tmp_path: Path) -> None:
    """An unknown runtime fails the run, naming the runtimes this worker has."""
    result = _round_trip(execute_run(_spec("vllm"), tmp_path, NODE))
    assert result["status"] == "failed"
    assert result["error"] == {
        "type": "UnknownRuntimeError",
        "message": "unknown runtime 'vllm'; this worker provides command, llama_cpp, noop",
    }
    assert result["telemetry"]["series"] == []


def test_a_missing_model_file_is_a_failed_result(tmp_path: Path) -> None:
    """A model file not on disk fails the run, naming the file and the directory."""
    spec = _spec("llama_cpp", {"prompt": "hi"}, model="gemma3-270m", model_file="absent.gguf")
    result = _round_trip(execute_run(spec, tmp_path, NODE))
    assert result["status"] == "failed"
    assert result["error"] is not None
    assert result["error"]["type"] == "ModelFileMissingError"
    assert result["error"]["message"] == (
        f"model file absent.gguf of model gemma3-270m is not in {tmp_path} on node {NODE}"
    )


def test_a_runtime_needing_a_model_without_one_is_a_failed_result(tmp_path: Path) -> None:
    """llama_cpp without a model_file fails the run before anything loads."""
    result = execute_run(_spec("llama_cpp", {"prompt": "hi"}), tmp_path, NODE)
    assert result["error"] is not None
    assert result["error"]["type"] == "ModelRequiredError"


def test_refused_params_are_a_failed_result_before_the_run(tmp_path: Path) -> None:
    """Params the runtime refuses fail the run without running or sampling it."""
    started = time.perf_counter()
    result = execute_run(_spec("noop", {"sleep_s": 5, "colour": "red"}), tmp_path, NODE)
    assert time.perf_counter() - started < 1.0
    assert result["error"] is not None
    assert result["error"]["type"] == "RuntimeParamsError"
    assert "unknown 'colour'" in result["error"]["message"]
    assert result["timings"]["total_s"] is None


def test_a_runtime_raising_is_a_failed_result_with_type_and_message(tmp_path: Path) -> None:
    """An exception from the runtime becomes the failure, telemetry included."""
    spec = _spec("noop", {"sleep_s": 0.1, "fail": "out of cheese"})
    result = _round_trip(execute_run(spec, tmp_path, NODE))
    assert result["status"] == "failed"
    assert result["error"] == {"type": "RequestedFailureError", "message": "out of cheese"}
    assert len(result["telemetry"]["series"]) >= 2


def test_a_program_that_cannot_start_is_a_failed_result(tmp_path: Path) -> None:
    """An OSError from starting a harness becomes the failure."""
    result = execute_run(_spec("command", {"argv": ["no-such-harness"]}), tmp_path, NODE)
    assert result["error"] is not None
    assert result["error"]["type"] == "FileNotFoundError"
    assert "no-such-harness" in result["error"]["message"]


def test_a_failing_harness_keeps_its_output(tmp_path: Path) -> None:
    """A non-zero exit fails the run and the output still carries stdout."""
    spec = _spec("command", {"argv": ["sh", "-c", "echo '{\"step\": 2}'; exit 4"]})
    result = _round_trip(execute_run(spec, tmp_path, NODE))
    assert result["status"] == "failed"
    assert result["error"] == {"type": "CommandExitError", "message": "sh exited with status 4"}
    assert result["output"]["output_json"] == {"step": 2}


def test_a_model_that_fails_to_load_is_a_failed_result(tmp_path: Path) -> None:
    """A file llama.cpp cannot load fails the run with llama.cpp's reason."""
    (tmp_path / "broken.gguf").write_bytes(b"GGUF" + b"\0" * 64)
    spec = _spec("llama_cpp", {"prompt": "hi"}, model_file="broken.gguf")
    result = _round_trip(execute_run(spec, tmp_path, NODE))
    assert result["error"] is not None
    assert result["error"]["type"] == "ModelLoadError"
    assert "broken.gguf" in result["error"]["message"]


def test_a_malformed_spec_raises_value_error(tmp_path: Path) -> None:
    """A spec of the wrong shape is the caller's error: ValueError, not a result."""
    with pytest.raises(ValueError, match="run spec r-test: params: expected a mapping"):
        execute_run({"run_id": "r-test", "runtime": "noop", "params": "x"}, tmp_path, NODE)


@pytest.mark.slow
def test_a_llama_cpp_run_generates_text_with_timings_and_telemetry(models_dir: Path) -> None:
    """Gemma 3 270M generates text; tokens, timings and telemetry are all there."""
    params = {"prompts": ["The capital of France is"], "max_tokens": 16}
    spec = _spec("llama_cpp", params, model=GEMMA_MODEL_NAME, model_file=GEMMA_CATALOG_FILE)
    spec["telemetry"] = {"interval_s": 0.1}
    result = _round_trip(execute_run(spec, models_dir, NODE))
    assert result["status"] == "succeeded", result["error"]
    assert len(result["output"]) == 1 and result["output"][0].strip()
    assert result["tokens"]["prompt"] > 0
    assert 0 < result["tokens"]["completion"] <= 16
    timings = result["timings"]
    assert timings["tokens_per_s"] is not None and timings["tokens_per_s"] > 0
    assert timings["first_token_s"] is not None and timings["first_token_s"] > 0
    assert timings["total_s"] is not None and timings["load_s"] is not None
    assert timings["total_s"] >= timings["load_s"]
    assert len(result["telemetry"]["series"]) >= 2


@pytest.mark.slow
def test_greedy_llama_cpp_runs_repeat_and_reuse_the_model(models_dir: Path) -> None:
    """Two greedy runs with one seed give the same text; the second reuses the model."""
    params = {"prompt": "Once upon a time", "max_tokens": 16, "seed": 7}
    spec = _spec("llama_cpp", params, model=GEMMA_MODEL_NAME, model_file=GEMMA_CATALOG_FILE)
    first = execute_run(spec, models_dir, NODE)
    second = execute_run(spec, models_dir, NODE)
    assert first["status"] == second["status"] == "succeeded"
    assert first["output"] == second["output"]
    assert second["model_cached"] is True
    assert second["timings"]["load_s"] == 0.0


def test_a_refused_run_has_the_shape_of_an_executed_one(tmp_path: Path) -> None:
    """refused_result gives a failed result with every field execute_run gives."""
    executed = execute_run(_spec("noop"), tmp_path, NODE)
    refused = _round_trip(
        refused_result({"run_id": "r-9", "runtime": 3}, NODE, "Cancelled", "cancelled")
    )
    assert refused.keys() == executed.keys()
    assert refused["error"] == {"type": "Cancelled", "message": "cancelled"}
    assert (refused["status"], refused["run_id"], refused["runtime"]) == ("failed", "r-9", "")
    assert refused["timings"].keys() == executed["timings"].keys()
    assert refused["telemetry"]["series"] == [] and refused["telemetry"]["summary"] is None
