"""Tests of worker.runtimes.noop: the runtime that does nothing."""

from __future__ import annotations

import time

import pytest

from worker.runtimes.base import RuntimeParamsError
from worker.runtimes.noop import NoopRuntime, RequestedFailureError


def test_noop_returns_echo_at_once() -> None:
    """Without sleep_s a noop run returns its echo param immediately."""
    started = time.perf_counter()
    output = NoopRuntime().run({"echo": {"a": [1, 2]}}, None)
    assert output.output == {"a": [1, 2]}
    assert output.failure is None
    assert time.perf_counter() - started < 0.05


def test_noop_takes_sleep_s() -> None:
    """A noop run with sleep_s lasts that long."""
    started = time.perf_counter()
    NoopRuntime().run({"sleep_s": 0.2}, None)
    assert 0.2 <= time.perf_counter() - started < 0.5


def test_noop_fail_raises_with_the_message() -> None:
    """The fail param makes the run raise RequestedFailureError with its message."""
    with pytest.raises(RequestedFailureError, match=r"^asked to fail$"):
        NoopRuntime().run({"fail": "asked to fail"}, None)


@pytest.mark.parametrize("params", [{"sleep_s": -1}, {"sleep": 1}, {"fail": 3}])
def test_noop_check_refuses_bad_params(params: dict[str, object]) -> None:
    """Negative sleep_s, unknown params and a non-string fail are refused."""
    with pytest.raises(RuntimeParamsError, match="noop params"):
        NoopRuntime().check(params)
