"""Tests of worker.runtimes.params: typed reading of a run's params."""

from __future__ import annotations

from typing import Any

import pytest

from worker.runtimes.base import RuntimeParamsError
from worker.runtimes.params import ParamReader


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 64), (1, 1), (128, 128)],
)
def test_integer_returns_value_or_default(value: int | None, expected: int) -> None:
    """An absent integer takes its default; a given one is returned."""
    params = {} if value is None else {"n": value}
    assert ParamReader("r", params).integer("n", 64, minimum=1, maximum=128) == expected


@pytest.mark.parametrize("value", [0, 129, "8", 8.0, True, None, [8]])
def test_integer_refuses_wrong_type_or_range(value: Any) -> None:
    """An integer param out of range, or of another type, is refused by name."""
    with pytest.raises(RuntimeParamsError, match=r"r params: n: expected an integer from 1"):
        ParamReader("r", {"n": value}).integer("n", 64, minimum=1, maximum=128)


@pytest.mark.parametrize("value", [-0.1, "0.5", False, float("nan")])
def test_number_refuses_wrong_type_or_range(value: Any) -> None:
    """A number param below its minimum, not a number, or NaN is refused."""
    with pytest.raises(RuntimeParamsError, match="r params: x: expected a number of at least"):
        ParamReader("r", {"x": value}).number("x", 1.0, minimum=0.0)


def test_number_accepts_integers_as_floats() -> None:
    """An integer given for a number param is returned as a float."""
    assert ParamReader("r", {"x": 2}).number("x", 1.0) == 2.0


@pytest.mark.parametrize("value", [[], "a", ["a", 1]])
def test_texts_refuses_anything_but_a_non_empty_list_of_strings(value: Any) -> None:
    """texts wants a non-empty list of strings."""
    with pytest.raises(RuntimeParamsError, match="expected a non-empty list of strings"):
        ParamReader("r", {"argv": value}).texts("argv")


def test_text_map_refuses_non_string_values() -> None:
    """text_map wants strings for keys and values, as an environment does."""
    with pytest.raises(RuntimeParamsError, match="env: expected a mapping of strings"):
        ParamReader("r", {"env": {"A": 1}}).text_map("env")


def test_finish_names_unknown_and_accepted_params() -> None:
    """A param no getter read is refused, listing the ones that are accepted."""
    read = ParamReader("llama_cpp", {"max_token": 8, "seed": 1})
    read.integer("seed", 0)
    read.integer("max_tokens", 64)
    with pytest.raises(
        RuntimeParamsError, match=r"unknown 'max_token'; accepted: max_tokens, seed"
    ):
        read.finish()


def test_reader_refuses_params_that_are_not_a_mapping() -> None:
    """Params given as a list are refused before anything is read."""
    with pytest.raises(RuntimeParamsError, match="noop params: expected a mapping, got list"):
        ParamReader("noop", [1, 2])  # type: ignore[arg-type]
