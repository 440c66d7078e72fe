"""ansible-inventory and ansible-playbook, run as an operator runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[2]
BIN = ROOT / ".venv" / "bin"


def ansible(command: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [str(BIN / command), *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    """A copy of the example fleet that a test may break."""
    shutil.copytree(ROOT / "inventory", tmp_path / "inventory", symlinks=False)
    return tmp_path / "inventory"


def profile(inventory: Path, node: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((inventory / "nodes" / f"{node}.yaml").read_text())
    return data


def test_list_shows_groups_and_host_variables(inventory: Path) -> None:
    """--list exits 0 with the design's groups and each host's tier and queues."""
    result = ansible("ansible-inventory", "-i", inventory / "cluster.yml", "--list")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for group in (
        "controller",
        "workers",
        "tier_micro",
        "tier_small",
        "tier_medium",
        "tier_large",
        "gpu",
    ):
        assert data[group]["hosts"], group
    host = data["_meta"]["hostvars"]["nuc-01"]
    assert host["node_tier"] in ("small", {"__ansible_unsafe": "small"})
    assert len(host["celery_queues"]) == 3


def test_graph_exits_zero(inventory: Path) -> None:
    """--graph draws the tree of groups for the example fleet."""
    result = ansible("ansible-inventory", "-i", inventory / "cluster.yml", "--graph")
    assert result.returncode == 0, result.stderr
    assert "@tier_medium:" in result.stdout and "ws-01" in result.stdout


def test_playbook_using_the_filters(inventory: Path) -> None:
    """A playbook asserting host variables against the filters passes."""
    result = ansible(
        "ansible-playbook",
        "-i",
        inventory / "cluster.yml",
        ROOT / "tests" / "integration" / "playbooks" / "tier_filters.yml",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failed=0" in result.stdout


BAD = [
    ("missing field", "nuc-01", {"ram_gb": None}, "ram_gb: required field is missing"),
    ("wrong type", "nuc-01", {"cpus": "four"}, "cpus: expected a whole number above 0"),
    ("node_id not DNS-safe", "nuc-01", {"node_id": "NUC_01"}, "node_id: expected lowercase"),
    (
        "node_id not the file name",
        "nuc-01",
        {"node_id": "nuc-02"},
        "node_id: 'nuc-02' does not match the file name",
    ),
    ("RAM below the floor", "nuc-01", {"ram_gb": 0.9}, "ram_gb: 0.9 GB of RAM is below"),
    ("unknown tier", "nuc-01", {"tier": "xl"}, "tier: unknown tier 'xl'"),
    ("neither role", "nuc-01", {"roles": []}, "roles: expected a list of worker"),
]


def break_profile(inventory: Path, node: str, changes: dict[str, Any]) -> Path:
    path = inventory / "nodes" / f"{node}.yaml"
    data = {**profile(inventory, node), **changes}
    path.write_text(yaml.safe_dump({k: v for k, v in data.items() if v is not None}))
    return path


@pytest.mark.parametrize(("case", "node", "changes", "message"), BAD, ids=[b[0] for b in BAD])
@pytest.mark.parametrize("command", ["ansible-inventory", "ansible-playbook"])
def test_bad_profile_fails_the_command(
    inventory: Path, command: str, case: str, node: str, changes: dict[str, Any], message: str
) -> None:
    """The command exits non-zero naming file and field, with no traceback."""
    path = break_profile(inventory, node, changes)
    args = (
        ["--list"]
        if command == "ansible-inventory"
        else [ROOT / "tests" / "integration" / "playbooks" / "tier_filters.yml"]
    )
    result = ansible(command, "-i", inventory / "cluster.yml", *args)
    assert result.returncode != 0, case
    assert f"{path}: {message}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("case", "text", "message"),
    [
        ("not a mapping", "- just\n- a list\n", "expected a YAML mapping of profile fields"),
        ("invalid YAML", "node_id: [unclosed\n", "not valid YAML at line"),
    ],
)
def test_unreadable_profile_fails_inventory(
    inventory: Path, case: str, text: str, message: str
) -> None:
    """A file that is not a profile at all fails the inventory, naming the file."""
    path = inventory / "nodes" / "nuc-01.yaml"
    path.write_text(text)
    result = ansible("ansible-inventory", "-i", inventory / "cluster.yml", "--list")
    assert result.returncode != 0, case
    assert f"{path}: {message}" in result.stderr


def test_duplicate_node_id_names_both_files(inventory: Path) -> None:
    """The same node in two files is refused, naming both of them."""
    first = inventory / "nodes" / "nuc-01.yaml"
    second = inventory / "nodes" / "nuc-01.yml"
    shutil.copy(first, second)
    result = ansible("ansible-inventory", "-i", inventory / "cluster.yml", "--list")
    assert result.returncode != 0
    assert f"{second}: node_id: 'nuc-01' is already used by {first}" in result.stderr
