"""A run spec: what the controller sends a worker to execute, checked.

The spec is a plain mapping that came over JSON::

    {"run_id": "r-...", "runtime": "llama_cpp" | "command" | "noop",
     "model": "gemma3-270m" | None, "model_file": "....gguf" | None,
     "params": {...}, "telemetry": {"interval_s": 0.5, "enabled": true}}

``run_id`` and ``runtime`` are required; ``params`` defaults to empty and
``telemetry`` to enabled every ``DEFAULT_INTERVAL_S``. Keys this module does
not know are ignored, so that the controller can add some first.
``parse_spec`` checks shapes only: whether the runtime exists and the model
file is on disk is for the worker to find out and report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from worker.telemetry import validate_interval

__all__ = ["DEFAULT_INTERVAL_S", "RunSpec", "TelemetrySpec", "parse_spec"]

DEFAULT_INTERVAL_S = 0.5


@dataclass(frozen=True)
class TelemetrySpec:
    enabled: bool = True
    interval_s: float = DEFAULT_INTERVAL_S


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    runtime: str
    model: str | None = None
    model_file: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    telemetry: TelemetrySpec = field(default_factory=TelemetrySpec)


def parse_spec(spec: Any) -> RunSpec:
    """Return the spec as a RunSpec.

    Raises ValueError, naming the field and what it should be, when the
    spec is not a mapping or a field has the wrong type; when ``model_file``
    is not a plain file name; or when the telemetry interval is out of range.
    """
    if not isinstance(spec, Mapping):
        raise ValueError(f"run spec: expected a mapping, got {type(spec).__name__}")
    run_id = _required_text(spec, "run_id", "run spec")
    where = f"run spec {run_id}"
    params = spec.get("params") or {}
    if not isinstance(params, Mapping):
        raise ValueError(f"{where}: params: expected a mapping, got {params!r}")
    return RunSpec(
        run_id=run_id,
        runtime=_required_text(spec, "runtime", where),
        model=_optional_text(spec, "model", where),
        model_file=_model_file(spec, where),
        params=params,
        telemetry=_telemetry(spec.get("telemetry"), where),
    )


def _required_text(spec: Mapping[str, Any], name: str, where: str) -> str:
    value = spec.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: {name}: expected a non-empty string, got {value!r}")
    return value


def _optional_text(spec: Mapping[str, Any], name: str, where: str) -> str | None:
    value = spec.get(name)
    if value is None:
        return None
    return _required_text(spec, name, where)


def _model_file(spec: Mapping[str, Any], where: str) -> str | None:
    """Return the model file name; a path would let a spec reach any file."""
    name = _optional_text(spec, "model_file", where)
    if name is not None and ("/" in name or "\\" in name or name in (".", "..")):
        raise ValueError(
            f"{where}: model_file: expected a file name in the models directory, got {name!r}"
        )
    return name


def _telemetry(value: Any, where: str) -> TelemetrySpec:
    if value is None:
        return TelemetrySpec()
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: telemetry: expected a mapping, got {value!r}")
    enabled = value.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValueError(f"{where}: telemetry: enabled: expected true or false, got {enabled!r}")
    try:
        interval_s = validate_interval(value.get("interval_s", DEFAULT_INTERVAL_S))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return TelemetrySpec(enabled=enabled, interval_s=interval_s)
