"""The lab's inventory: profiles the plugin accepts, linked group variables."""

from __future__ import annotations

from pathlib import Path

import yaml

from controller.profiles import load_fleet
from lab.layout import LabLayout
from lab.profiles import REPO_GROUP_VARS, write_inventory
from lab.shape import default_shape
from lab.state import MachineRecord


def _machines() -> list[MachineRecord]:
    return [
        MachineRecord(
            name=spec.name,
            index=index,
            address=f"10.150.7.{10 + index}",
            roles=list(spec.roles),
            tier=spec.tier,
            ram_gb=spec.ram_gb,
            netns=f"ns-{index}",
            host_if=f"if-{index}",
        )
        for index, spec in enumerate(default_shape())
    ]


def test_profiles_are_valid_and_state_their_tier(tmp_path: Path) -> None:
    """Each machine gets a profile that load_fleet accepts, with its tier set."""
    layout = LabLayout(tmp_path / "state", tmp_path / "cache")
    write_inventory(layout, _machines(), "lab")
    fleet = {profile.node_id: profile for profile in load_fleet(layout.nodes_dir)}
    assert sorted(fleet) == ["lab-controller", "lab-micro-1", "lab-small-1"]
    assert fleet["lab-micro-1"].tier == "micro"
    assert fleet["lab-small-1"].queues() == ["research-small", "research-micro", "research-any"]
    raw = yaml.safe_load((layout.nodes_dir / "lab-micro-1.yaml").read_text(encoding="utf-8"))
    assert raw["tier"] == "micro"
    assert raw["ram_gb"] == 3.8


def test_cluster_file_uses_the_node_profiles_plugin(tmp_path: Path) -> None:
    """cluster.yml is the same plugin configuration as a real inventory's."""
    layout = LabLayout(tmp_path / "state", tmp_path / "cache")
    write_inventory(layout, _machines(), "lab")
    cluster = yaml.safe_load(layout.cluster_file.read_text(encoding="utf-8"))
    assert cluster == {"plugin": "node_profiles", "profiles_dir": "nodes"}


def test_group_vars_link_to_the_repository_and_add_lab_settings(tmp_path: Path) -> None:
    """Every repository group_vars file is linked; zz-lab.yml holds the SSH settings."""
    layout = LabLayout(tmp_path / "state", tmp_path / "cache")
    write_inventory(layout, _machines(), "lab")
    for source in REPO_GROUP_VARS.rglob("*.yml"):
        link = layout.inventory_dir / "group_vars" / source.relative_to(REPO_GROUP_VARS)
        assert link.is_symlink()
        assert link.resolve() == source.resolve()
    settings = yaml.safe_load(layout.lab_vars_file.read_text(encoding="utf-8"))
    assert settings["ansible_user"] == "root"
    assert settings["ansible_ssh_private_key_file"] == str(layout.private_key)
    assert f"UserKnownHostsFile={layout.known_hosts}" in settings["ansible_ssh_common_args"]


def test_profile_of_a_removed_machine_is_gone(tmp_path: Path) -> None:
    """Rewriting the inventory without a machine drops its profile."""
    layout = LabLayout(tmp_path / "state", tmp_path / "cache")
    machines = _machines()
    write_inventory(layout, machines, "lab")
    write_inventory(layout, machines[:2], "lab")
    assert not (layout.nodes_dir / "lab-small-1.yaml").exists()
