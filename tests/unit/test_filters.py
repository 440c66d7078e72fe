"""The tier filters that playbooks use, and their errors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

sys.path.insert(0, str(Path(__file__).parents[2] / "filter_plugins"))
from tiers import FilterModule

FILTERS = FilterModule().filters()
PROFILE = {
    "node_id": "nuc-1",
    "address": "10.0.0.2",
    "roles": ["worker"],
    "ram_gb": 7.6,
    "cpus": 4,
    "arch": "x86_64",
}


def test_node_tier_of_a_profile() -> None:
    """node_tier returns the tier a profile's RAM gives."""
    assert FILTERS["node_tier"](PROFILE) == "small"


def test_node_queues_of_a_gpu_node() -> None:
    """node_queues puts the GPU queue first when asked."""
    assert FILTERS["node_queues"]("micro", gpu=True) == [
        "research-gpu",
        "research-micro",
        "research-any",
    ]


def test_model_queue_of_a_catalog_entry() -> None:
    """model_queue routes a 0.5 GB model to research-micro and a GPU model to research-gpu."""
    assert FILTERS["model_queue"]({"ram_gb": 0.5}) == "research-micro"
    assert FILTERS["model_queue"]({"ram_gb": 40, "gpu": True}) == "research-gpu"


@pytest.mark.parametrize(
    ("name", "value", "kwargs", "message"),
    [
        ("node_tier", {**PROFILE, "ram_gb": "lots"}, {}, "node_tier: .*ram_gb: expected a number"),
        (
            "node_tier",
            "not a profile",
            {},
            "node_tier: 'not a profile': .*expected a YAML mapping",
        ),
        ("node_queues", "huge", {}, "node_queues: 'huge': unknown tier 'huge'"),
        (
            "node_queues",
            "small",
            {"gpu": "yes"},
            "node_queues: 'small': gpu must be true or false",
        ),
        ("model_queue", {"ram_gb": "a lot"}, {}, "model_queue: .*ram_gb must be a number"),
        ("model_queue", {"ram_gb": 64}, {}, "model_queue: .*needs 64.0 GB of RAM"),
        ("model_queue", [1, 2], {}, "model_queue: \\[1, 2\\]: expected a mapping"),
    ],
)
def test_filter_errors_name_the_filter_and_value(
    name: str, value: Any, kwargs: dict[str, Any], message: str
) -> None:
    """Bad input raises AnsibleFilterError starting with the filter's name and the value."""
    with pytest.raises(AnsibleFilterError, match=message):
        FILTERS[name](value, **kwargs)
