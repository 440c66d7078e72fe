"""Inventory plugin building the cluster's hosts from node profiles."""

from __future__ import annotations

import sys
from pathlib import Path

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin

try:
    from controller.profiles import NodeProfile, ProfileError, load_fleet
    from controller.tiers import tier_model
except ImportError:  # run from a checkout whose package is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from controller.profiles import NodeProfile, ProfileError, load_fleet
    from controller.tiers import tier_model

DOCUMENTATION = r"""
name: node_profiles
short_description: Hosts, tiers and Celery queues from node_profile.yaml files
description:
  - Reads one C(<node_id>.yaml) profile per node from O(profiles_dir).
  - Validates every profile; one bad profile fails the whole inventory with
    the file, the field and what was expected. No partial inventory is built.
  - Puts each host in C(controller) and/or C(workers), each worker in
    C(tier_<tier>), and each GPU node in C(gpu).
  - Sets C(ansible_host), C(node_tier), C(celery_queues) and the profile's
    other fields as C(node_*) host variables; each label becomes C(label_<key>).
options:
  plugin:
    description: Marks this file as a source for this plugin.
    required: true
    choices: [node_profiles]
  profiles_dir:
    description: Directory of node profiles, relative to this file.
    type: str
    default: nodes
"""

EXAMPLES = r"""
# inventory/cluster.yml
plugin: node_profiles
profiles_dir: nodes
"""


class InventoryModule(BaseInventoryPlugin):
    NAME = "node_profiles"

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and path.endswith((".yml", ".yaml"))

    def parse(self, inventory, loader, path, cache=True):  # type: ignore[no-untyped-def]
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        profiles_dir = Path(path).parent / self.get_option("profiles_dir")
        try:
            fleet = load_fleet(profiles_dir)
        except ProfileError as exc:
            raise AnsibleParserError(f"node_profiles: invalid node profiles:\n{exc}") from None
        # Every group exists, empty or not, so plays may target any of them.
        for group in ("controller", "workers", "gpu", *(f"tier_{t}" for t in tier_model().names)):
            self.inventory.add_group(group)
        for profile in fleet:
            self._add_node(profile)

    def _add_node(self, profile: NodeProfile) -> None:
        host = profile.node_id
        self.inventory.add_host(host)
        if profile.is_controller:
            self.inventory.add_child("controller", host)
        if profile.is_worker:
            self.inventory.add_child("workers", host)
            self.inventory.add_child(f"tier_{profile.tier}", host)
            self.inventory.set_variable(host, "celery_queues", profile.queues())
        if profile.gpu:
            self.inventory.add_child("gpu", host)
        for name, value in _host_vars(profile).items():
            self.inventory.set_variable(host, name, value)


def _host_vars(profile: NodeProfile) -> dict[str, object]:
    variables: dict[str, object] = {
        "ansible_host": profile.address,
        "node_id": profile.node_id,
        "node_tier": profile.tier,
        "node_roles": list(profile.roles),
        "node_ram_gb": profile.ram_gb,
        "node_cpus": profile.cpus,
        "node_arch": profile.arch,
        "node_gpu": profile.gpu,
        "node_gpu_memory_gb": profile.gpu_memory_gb,
        "node_labels": dict(profile.labels),
        "node_profile_path": profile.source,
    }
    variables.update({f"label_{key}": value for key, value in profile.labels.items()})
    return variables
