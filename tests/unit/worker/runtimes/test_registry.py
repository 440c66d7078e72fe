"""Tests of worker.runtimes.registry: runtimes by name."""

from __future__ import annotations

import pytest

from worker.runtimes import UnknownRuntimeError, get_runtime, runtime_names


def test_runtime_names_lists_the_built_in_runtimes() -> None:
    """The worker provides llama_cpp, command and noop."""
    assert runtime_names() == ("command", "llama_cpp", "noop")


@pytest.mark.parametrize("name", ["llama_cpp", "command", "noop"])
def test_get_runtime_returns_one_instance_per_process(name: str) -> None:
    """A runtime is created once, so that what it keeps lives between runs."""
    runtime = get_runtime(name)
    assert runtime.name == name
    assert get_runtime(name) is runtime


def test_get_runtime_names_the_known_ones_for_an_unknown_name() -> None:
    """An unknown runtime is refused with the list of known runtimes."""
    with pytest.raises(UnknownRuntimeError, match=r"'vllm'; this worker provides command, llama"):
        get_runtime("vllm")
