"""Tests of worker.spec: checking the shape of a run spec."""

from __future__ import annotations

import re
from typing import Any

import pytest

from worker.spec import DEFAULT_INTERVAL_S, RunSpec, TelemetrySpec, parse_spec


def test_a_minimal_spec_gets_defaults() -> None:
    """Only run_id and runtime are required; telemetry is on by default."""
    spec = parse_spec({"run_id": "r-1", "runtime": "noop"})
    assert spec == RunSpec(run_id="r-1", runtime="noop")
    assert spec.telemetry == TelemetrySpec(enabled=True, interval_s=DEFAULT_INTERVAL_S)


def test_a_full_spec_is_kept_and_unknown_keys_ignored() -> None:
    """Every field is carried over; keys the worker does not know are ignored."""
    spec = parse_spec(
        {
            "run_id": "r-2",
            "runtime": "llama_cpp",
            "model": "gemma3-270m",
            "model_file": "gemma.gguf",
            "params": {"prompt": "hi"},
            "telemetry": {"interval_s": 1, "enabled": False},
            "queue": "research-micro",
        }
    )
    assert (spec.model, spec.model_file, spec.params) == (
        "gemma3-270m",
        "gemma.gguf",
        {"prompt": "hi"},
    )
    assert spec.telemetry == TelemetrySpec(enabled=False, interval_s=1.0)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (["r-1"], "run spec: expected a mapping, got list"),
        ({"runtime": "noop"}, "run spec: run_id: expected a non-empty string, got None"),
        ({"run_id": "r-1"}, "run spec r-1: runtime: expected a non-empty string"),
        ({"run_id": "r-1", "runtime": 3}, "runtime: expected a non-empty string, got 3"),
        ({"run_id": "r-1", "runtime": "noop", "params": [1]}, "params: expected a mapping"),
        ({"run_id": "r-1", "runtime": "noop", "model": ""}, "model: expected a non-empty"),
        (
            {"run_id": "r-1", "runtime": "noop", "model_file": "../../etc/passwd"},
            "model_file: expected a file name in the models directory",
        ),
        ({"run_id": "r-1", "runtime": "noop", "telemetry": True}, "telemetry: expected a mapping"),
        (
            {"run_id": "r-1", "runtime": "noop", "telemetry": {"enabled": "yes"}},
            "telemetry: enabled: expected true or false",
        ),
        (
            {"run_id": "r-1", "runtime": "noop", "telemetry": {"interval_s": 0.001}},
            "run spec r-1: telemetry interval_s: expected seconds from 0.05 to 60",
        ),
    ],
)
def test_a_malformed_spec_is_refused_naming_the_field(spec: Any, message: str) -> None:
    """A spec of the wrong shape raises ValueError naming the run and the field."""
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_spec(spec)
