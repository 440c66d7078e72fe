"""Node profile validation: every bad case is named with file, field and expectation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.profiles import ProfileError, load_fleet, load_profile, parse_profile

GOOD: dict[str, Any] = {
    "node_id": "pi-kitchen-01",
    "address": "10.20.0.11",
    "roles": ["worker"],
    "ram_gb": 3.8,
    "cpus": 4,
    "arch": "aarch64",
}


def write(directory: Path, name: str, data: object) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def with_(**changes: Any) -> dict[str, Any]:
    profile = {**GOOD, **changes}
    return {key: value for key, value in profile.items() if value is not ...}


def test_good_profile_gets_tier_and_queues() -> None:
    """A 3.8 GB board is a micro worker consuming research-micro then research-any."""
    profile = parse_profile(GOOD, "p.yaml")
    assert (profile.tier, profile.queues()) == ("micro", ["research-micro", "research-any"])
    assert profile.is_worker and not profile.is_controller


def test_gpu_profile_reads_gpu_queue_first() -> None:
    """A GPU node consumes research-gpu before its own tier."""
    profile = parse_profile(with_(gpu=True, gpu_memory_gb=24, ram_gb=64), "p.yaml")
    assert profile.queues()[0] == "research-gpu"


BAD_CASES = [
    ("missing field", with_(cpus=...), "cpus: required field is missing"),
    ("wrong type", with_(ram_gb="eight"), "ram_gb: expected a number above 0, got 'eight'"),
    ("bool as number", with_(cpus=True), "cpus: expected a whole number above 0"),
    ("float cpus", with_(cpus=2.5), "cpus: expected a whole number above 0"),
    ("node_id not DNS-safe", with_(node_id="Pi_Kitchen"), "node_id: expected lowercase"),
    ("node_id ends with hyphen", with_(node_id="pi-"), "node_id: expected lowercase"),
    ("RAM below the micro floor", with_(ram_gb=1.0), "ram_gb: 1.0 GB of RAM is below the micro"),
    ("unknown tier", with_(tier="huge"), "tier: unknown tier 'huge'; expected one of micro"),
    ("neither role", with_(roles=[]), "roles: expected a list of worker and/or controller"),
    ("unknown role", with_(roles=["gateway"]), "roles: expected a list of worker"),
    ("roles not a list", with_(roles="worker"), "roles: expected a list"),
    ("bad address", with_(address="10.0.0.300 x"), "address: expected an IP address"),
    ("gpu not a bool", with_(gpu="yes please"), "gpu: expected true or false"),
    ("gpu without memory", with_(gpu=True), "gpu_memory_gb: required when gpu is true"),
    ("gpu memory without gpu", with_(gpu_memory_gb=8), "gpu_memory_gb: given for a node"),
    ("labels not a mapping", with_(labels=["a"]), "labels: expected a mapping"),
    ("unknown field", with_(ramgb=4), "ramgb: unknown field; expected one of node_id"),
    ("empty arch", with_(arch=""), "arch: expected a non-empty string"),
]


@pytest.mark.parametrize(("case", "data", "message"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_profile_names_field_and_expectation(
    tmp_path: Path, case: str, data: dict[str, Any], message: str
) -> None:
    """Each malformed profile is refused with 'file: field: what was expected'."""
    path = write(tmp_path, str(data.get("node_id", "pi-kitchen-01")), data)
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    assert f"{path}: {message}" in str(caught.value), case


def test_node_id_must_match_file_name(tmp_path: Path) -> None:
    """A profile stored under another node's name is refused naming both."""
    path = write(tmp_path, "pi-kitchen-02", GOOD)
    with pytest.raises(
        ProfileError,
        match="'pi-kitchen-01' does not match the file name; expected 'pi-kitchen-02'",
    ):
        load_profile(path)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "", "42\n"])
def test_file_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    """A YAML list, scalar or empty file is refused as not a mapping."""
    path = write(tmp_path, "pi-1", text)
    with pytest.raises(ProfileError, match="expected a YAML mapping of profile fields"):
        load_profile(path)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    """A syntax error is reported with the file and its line, not a traceback."""
    path = write(tmp_path, "pi-1", "node_id: pi-1\nroles: [worker\n")
    with pytest.raises(ProfileError, match=r"pi-1.yaml: not valid YAML at line \d"):
        load_profile(path)


def test_every_problem_of_a_file_is_reported(tmp_path: Path) -> None:
    """Two bad fields in one file give two lines, so one edit fixes both."""
    path = write(tmp_path, "pi-kitchen-01", with_(cpus="four", ram_gb="eight"))
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    assert len(caught.value.problems) == 2


def test_fleet_with_one_bad_profile_is_refused_whole(tmp_path: Path) -> None:
    """load_fleet returns nothing when any file is bad, and names only the bad one."""
    write(tmp_path, "pi-kitchen-01", GOOD)
    write(tmp_path, "pi-2", with_(node_id="pi-2", cpus="x"))
    with pytest.raises(ProfileError) as caught:
        load_fleet(tmp_path)
    assert caught.value.problems == [
        f"{tmp_path / 'pi-2.yaml'}: cpus: expected a whole number above 0, got 'x' (str)"
    ]


def test_duplicate_node_id_names_both_files(tmp_path: Path) -> None:
    """The same node_id in a .yaml and a .yml file is refused naming both."""
    write(tmp_path, "pi-kitchen-01", GOOD)
    (tmp_path / "pi-kitchen-01.yml").write_text(yaml.safe_dump(GOOD))
    with pytest.raises(
        ProfileError,
        match=r"pi-kitchen-01.yml: node_id: 'pi-kitchen-01' is "
        r"already used by .*pi-kitchen-01.yaml",
    ):
        load_fleet(tmp_path)


def test_empty_or_missing_directory_is_refused(tmp_path: Path) -> None:
    """A directory without profiles, or none at all, is an error, not an empty fleet."""
    with pytest.raises(ProfileError, match="no node profiles"):
        load_fleet(tmp_path)
    with pytest.raises(ProfileError, match="does not exist"):
        load_fleet(tmp_path / "absent")


def test_shipped_example_fleet_is_valid() -> None:
    """inventory/nodes holds a controller and micro, small, medium, large and GPU workers."""
    fleet = load_fleet(Path(__file__).parents[2] / "inventory" / "nodes")
    tiers = {p.tier for p in fleet if p.is_worker}
    assert tiers == {"micro", "small", "medium", "large"}
    assert any(p.is_controller for p in fleet) and any(p.gpu for p in fleet)
