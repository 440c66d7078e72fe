"""The runtimes a worker provides, by the name a run spec gives.

Each runtime is created once per process, on first use, so that state it
keeps between runs (the loaded model of llama_cpp) lives as long as the
worker process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from worker.runtimes.base import Runtime, UnknownRuntimeError
from worker.runtimes.command import CommandRuntime
from worker.runtimes.llama_cpp import LlamaCppRuntime
from worker.runtimes.noop import NoopRuntime

__all__ = ["get_runtime", "runtime_names"]

_FACTORIES: dict[str, Callable[[], Runtime]] = {
    LlamaCppRuntime.name: LlamaCppRuntime,
    CommandRuntime.name: CommandRuntime,
    NoopRuntime.name: NoopRuntime,
}


def runtime_names() -> tuple[str, ...]:
    """Return the names of the runtimes this worker provides, sorted."""
    return tuple(sorted(_FACTORIES))


@functools.cache
def get_runtime(name: str) -> Runtime:
    """Return this process's runtime called ``name``.

    Raises UnknownRuntimeError, naming the known runtimes, for any other name.
    """
    factory = _FACTORIES.get(name)
    if factory is None:
        raise UnknownRuntimeError(
            f"unknown runtime {name!r}; this worker provides {', '.join(runtime_names())}"
        )
    return factory()
