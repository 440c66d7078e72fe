"""The node_profiles inventory plugin, loaded by Ansible's own inventory manager."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleError
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader

ROOT = Path(__file__).parents[2]


@pytest.fixture(autouse=True)
def plugin_path(monkeypatch: pytest.MonkeyPatch) -> None:
    inventory_loader.add_directory(str(ROOT / "plugins" / "inventory"))
    monkeypatch.setattr("ansible.constants.INVENTORY_ENABLED", ["node_profiles"])
    monkeypatch.setattr("ansible.constants.INVENTORY_ANY_UNPARSED_IS_FAILED", True)


def fleet(tmp_path: Path) -> Path:
    """Copy the shipped example fleet and its configuration into tmp_path."""
    shutil.copytree(ROOT / "inventory" / "nodes", tmp_path / "nodes")
    shutil.copy(ROOT / "inventory" / "cluster.yml", tmp_path / "cluster.yml")
    return tmp_path / "cluster.yml"


def test_groups_and_host_variables(tmp_path: Path) -> None:
    """Hosts land in controller, workers, tier_* and gpu with node_tier and celery_queues."""
    inventory = InventoryManager(DataLoader(), sources=[str(fleet(tmp_path))])
    names = {
        group: sorted(h.name for h in inventory.groups[group].get_hosts())
        for group in ("controller", "workers", "gpu", "tier_micro", "tier_large")
    }
    assert names == {
        "controller": ["ctl-01"],
        "workers": ["gpu-01", "nuc-01", "pi-kitchen-01", "srv-01", "ws-01"],
        "gpu": ["gpu-01"],
        "tier_micro": ["pi-kitchen-01"],
        "tier_large": ["gpu-01", "srv-01"],
    }
    pi = inventory.get_host("pi-kitchen-01").vars
    assert pi["ansible_host"] == "10.20.0.11"
    assert pi["node_tier"] == "micro"
    assert pi["celery_queues"] == ["research-micro", "research-any"]
    assert pi["label_room"] == "kitchen"


def test_controller_only_node_has_no_queues(tmp_path: Path) -> None:
    """A controller that is not a worker consumes nothing and sits in no tier group."""
    inventory = InventoryManager(DataLoader(), sources=[str(fleet(tmp_path))])
    controller = inventory.get_host("ctl-01")
    assert "celery_queues" not in controller.vars
    assert sorted(g.name for g in controller.get_groups()) == ["all", "controller"]


def test_one_bad_profile_fails_everything(tmp_path: Path) -> None:
    """A bad profile raises, naming file and field, and leaves no host behind."""
    source = fleet(tmp_path)
    bad = tmp_path / "nodes" / "nuc-01.yaml"
    bad.write_text(yaml.safe_dump({**yaml.safe_load(bad.read_text()), "cpus": "four"}))
    with pytest.raises(
        AnsibleError, match=f"Completely failed to parse inventory source {source}"
    ):
        InventoryManager(DataLoader(), sources=[str(source)])
