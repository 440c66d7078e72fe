"""The noop runtime: a run that does nothing, for benchmarks and tests.

Params:

- ``sleep_s`` (number, 0 to 86400, default 0): how long the run takes.
- ``echo`` (any JSON value, default null): returned as the run's output.
- ``fail`` (string, default null): when given, the run fails with this
  message, raised as ``RequestedFailureError``, after sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.runtimes.base import RunError, RunOutput, Runtime
from worker.runtimes.params import ParamReader

__all__ = ["NoopParams", "NoopRuntime", "RequestedFailureError"]


class RequestedFailureError(RunError):
    """The failure a noop run was asked for with its ``fail`` param."""


@dataclass(frozen=True)
class NoopParams:
    sleep_s: float = 0.0
    echo: Any = None
    fail: str | None = None

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> NoopParams:
        """Return the params; raise RuntimeParamsError if any is unacceptable."""
        read = ParamReader("noop", params)
        parsed = cls(
            sleep_s=read.number("sleep_s", 0.0, minimum=0.0, maximum=86400.0),
            echo=read.raw("echo"),
            fail=read.text("fail"),
        )
        read.finish()
        return parsed


class NoopRuntime(Runtime):
    """Sleeps for ``sleep_s`` and returns ``echo``."""

    name = "noop"
    needs_model = False

    def check(self, params: Mapping[str, Any]) -> None:
        NoopParams.parse(params)

    def run(self, params: Mapping[str, Any], model_path: Path | None) -> RunOutput:
        """Return ``echo`` as the output; raise RequestedFailureError if ``fail`` is given."""
        parsed = NoopParams.parse(params)
        if parsed.sleep_s:
            time.sleep(parsed.sleep_s)
        if parsed.fail is not None:
            raise RequestedFailureError(parsed.fail)
        return RunOutput(output=parsed.echo)
