"""The tier model read from controller/data/tiers.yml."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.tiers import TierError, load_tier_model, tier_model

MODEL = tier_model()


@pytest.mark.parametrize(
    ("ram_gb", "tier"),
    [
        (1.8, "micro"),
        (3.8, "micro"),
        (7.6, "small"),
        (15.5, "medium"),
        (31.2, "large"),
        (250.0, "large"),
    ],
)
def test_nominal_machines_land_in_their_tier(ram_gb: float, tier: str) -> None:
    """Usable RAM of 2, 4, 8, 16, 32 GB machines and a big server map to their tiers."""
    assert MODEL.node_tier(ram_gb).name == tier


def test_explicit_tier_overrides_ram() -> None:
    """A profile's tier wins over the tier its RAM gives."""
    assert MODEL.node_tier(31.2, "micro").name == "micro"


def test_ram_below_the_micro_floor_is_refused() -> None:
    """A node under the smallest floor belongs to no tier and says which floor."""
    with pytest.raises(TierError, match=r"below the micro floor of 1\.5 GB"):
        MODEL.node_tier(1.0)


def test_unknown_tier_names_the_known_ones() -> None:
    """An unknown tier name is refused with the list of valid names."""
    with pytest.raises(TierError, match="expected one of micro, small, medium, large"):
        MODEL.node_tier(8.0, "huge")


@pytest.mark.parametrize(
    ("tier", "gpu", "queues"),
    [
        ("micro", False, ["research-micro", "research-any"]),
        ("small", False, ["research-small", "research-micro", "research-any"]),
        (
            "large",
            False,
            [
                "research-large",
                "research-medium",
                "research-small",
                "research-micro",
                "research-any",
            ],
        ),
        ("small", True, ["research-gpu", "research-small", "research-micro", "research-any"]),
    ],
)
def test_node_queues_in_reading_order(tier: str, gpu: bool, queues: list[str]) -> None:
    """GPU first, own tier, lower tiers from larger to smaller, any last."""
    assert MODEL.node_queues(tier, gpu) == queues


@pytest.mark.parametrize(
    ("ram_gb", "gpu", "queue"),
    [
        (0.5, False, "research-micro"),
        (1.5, False, "research-micro"),
        (2.0, False, "research-small"),
        (12.0, False, "research-medium"),
        (20.0, False, "research-large"),
        (200.0, True, "research-gpu"),
    ],
)
def test_queue_for_requirements(ram_gb: float, gpu: bool, queue: str) -> None:
    """The smallest tier whose floor guarantees the RAM; GPU needs go to the GPU queue."""
    assert MODEL.queue_for(ram_gb, gpu) == queue


def test_need_above_every_floor_is_refused() -> None:
    """A need above the largest floor names what the largest tier guarantees."""
    with pytest.raises(TierError, match=r"largest tier, large, guarantees 24\.0 GB"):
        MODEL.queue_for(30.0)


def test_cluster_has_the_six_fixed_queues() -> None:
    """The data file defines exactly the six queue names of the design."""
    assert sorted(MODEL.queues) == sorted(
        [
            "research-micro",
            "research-small",
            "research-medium",
            "research-large",
            "research-gpu",
            "research-any",
        ]
    )


def test_unsorted_tier_file_is_refused(tmp_path: Path) -> None:
    """A tier file whose floors do not rise is refused, naming the file."""
    path = tmp_path / "tiers.yml"
    path.write_text(
        "cluster_tiers:\n"
        "  - {name: a, queue: qa, min_ram_gb: 4}\n"
        "  - {name: b, queue: qb, min_ram_gb: 2}\n"
        "cluster_gpu_queue: g\ncluster_any_queue: x\n"
    )
    with pytest.raises(TierError, match=f"{path}: cluster_tiers must be listed"):
        load_tier_model(path)


# --- property tests against brute-force oracles ------------------------------

ram = st.floats(min_value=0.0, max_value=512.0, allow_nan=False)


def oracle_node_tier(ram_gb: float) -> str | None:
    """The tier with the highest floor not above ram_gb, by trying every tier."""
    fitting = [t for t in MODEL.tiers if t.min_ram_gb <= ram_gb]
    return max(fitting, key=lambda t: t.min_ram_gb).name if fitting else None


def oracle_queue(ram_gb: float, gpu: bool) -> str | None:
    """Among all tiers that guarantee ram_gb, the one with the lowest floor."""
    if gpu:
        return MODEL.gpu_queue
    able = [t for t in MODEL.tiers if t.min_ram_gb >= ram_gb]
    return min(able, key=lambda t: t.min_ram_gb).queue if able else None


@given(ram)
def test_node_tier_matches_oracle(ram_gb: float) -> None:
    """node_tier agrees with trying every tier, including refusals."""
    expected = oracle_node_tier(ram_gb)
    if expected is None:
        with pytest.raises(TierError):
            MODEL.node_tier(ram_gb)
    else:
        assert MODEL.node_tier(ram_gb).name == expected


@given(ram, st.booleans())
def test_queue_for_matches_oracle(ram_gb: float, gpu: bool) -> None:
    """queue_for agrees with trying every tier, including refusals."""
    expected = oracle_queue(ram_gb, gpu)
    if expected is None:
        with pytest.raises(TierError):
            MODEL.queue_for(ram_gb, gpu)
    else:
        assert MODEL.queue_for(ram_gb, gpu) == expected


@given(ram, ram, st.booleans())
def test_a_node_consumes_the_queue_of_every_need_it_can_hold(
    node_ram: float, need: float, gpu: bool
) -> None:
    """Whenever a node's tier floor covers a need, its queues include that need's queue."""
    if oracle_node_tier(node_ram) is None or oracle_queue(need, False) is None:
        return
    tier = MODEL.node_tier(node_ram)
    queue = MODEL.queue_for(need)
    if tier.min_ram_gb >= need:
        assert queue in MODEL.node_queues(tier.name, gpu)
