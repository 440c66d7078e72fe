"""Machine descriptions on the command line and the default lab."""

from __future__ import annotations

import pytest

from lab.errors import LabError
from lab.shape import MachineSpec, default_shape, parse_spec


def test_default_shape_is_controller_micro_and_small() -> None:
    """The default lab is lab-controller, lab-micro-1 and lab-small-1."""
    assert default_shape() == [
        MachineSpec("lab-controller", ("controller",), "small"),
        MachineSpec("lab-micro-1", ("worker",), "micro"),
        MachineSpec("lab-small-1", ("worker",), "small"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("w-1:worker", MachineSpec("w-1", ("worker",), "micro")),
        ("w-2:worker:small", MachineSpec("w-2", ("worker",), "small")),
        ("c:controller,worker:medium", MachineSpec("c", ("controller", "worker"), "medium")),
    ],
)
def test_spec_is_parsed(text: str, expected: MachineSpec) -> None:
    """NAME:ROLES[:TIER] gives the machine, micro when no tier is named."""
    assert parse_spec(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("w-1", "expected NAME:ROLES"),
        ("W_1:worker", "lowercase letters"),
        ("w-1:gardener", "roles"),
        ("w-1:worker:huge", "tier 'huge'"),
    ],
)
def test_bad_spec_names_the_problem(text: str, problem: str) -> None:
    """A bad description is refused with what was wrong."""
    with pytest.raises(LabError, match=problem):
        parse_spec(text)


def test_ram_is_a_plausible_figure_for_the_tier() -> None:
    """A micro machine reports 3.8 GB, a small one 7.6 GB."""
    assert parse_spec("a:worker:micro").ram_gb == 3.8
    assert parse_spec("a:worker:small").ram_gb == 7.6
