"""Runtimes: the ways a worker can execute a run (llama_cpp, command, noop)."""

from worker.runtimes.base import (
    RunError,
    RunOutput,
    Runtime,
    RuntimeParamsError,
    UnknownRuntimeError,
)
from worker.runtimes.registry import get_runtime, runtime_names

__all__ = [
    "RunError",
    "RunOutput",
    "Runtime",
    "RuntimeParamsError",
    "UnknownRuntimeError",
    "get_runtime",
    "runtime_names",
]
