"""The runtime interface: what a worker needs from anything that executes a run.

A runtime takes a run's ``params`` and the path of the node's model file (or
None when the run names no model) and returns a ``RunOutput``. It raises
``RuntimeParamsError`` for params it cannot accept; any other exception it
raises is reported as the run's failure by the caller. A runtime that ran to
the end but judged the run failed (a harness exiting non-zero) says so in
``RunOutput.failure`` instead, so that its output is kept.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "RunError",
    "RunOutput",
    "Runtime",
    "RuntimeParamsError",
    "UnknownRuntimeError",
]


class RunError(Exception):
    """A run that cannot succeed, for a reason the worker can name."""


class RuntimeParamsError(RunError, ValueError):
    """A run's params that its runtime cannot accept."""


class UnknownRuntimeError(RunError, LookupError):
    """A runtime name that this worker does not provide."""


@dataclass
class RunOutput:
    """What a runtime returns.

    ``output`` must be JSON-serialisable. Token counts are summed over the
    run's prompts; timings are seconds and None where they do not apply.
    ``model_cached`` is True when the runtime reused a model already loaded
    in this process (``load_s`` is then 0), None for runtimes without one.
    """

    output: Any = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    load_s: float | None = None
    first_token_s: float | None = None
    tokens_per_s: float | None = None
    model_cached: bool | None = None
    failure: RunError | None = None


class Runtime(abc.ABC):
    """Executes runs of one kind; one instance serves every run of a process."""

    #: The name a run spec gives in its ``runtime`` field.
    name: str
    #: Whether a run of this runtime must name a model file.
    needs_model: bool = False

    @abc.abstractmethod
    def check(self, params: Mapping[str, Any]) -> None:
        """Return None if ``params`` are acceptable; raise RuntimeParamsError
        naming the first param that is not. Loads nothing and runs nothing."""

    @abc.abstractmethod
    def run(self, params: Mapping[str, Any], model_path: Path | None) -> RunOutput:
        """Execute one run and return its output.

        Raises RuntimeParamsError for unacceptable params; other exceptions
        come from the work itself and mean the run failed.
        """
