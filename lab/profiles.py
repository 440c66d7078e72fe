"""The lab's inventory: a node profile per machine and the same
``cluster.yml``, plugin and group variables as a real inventory."""

from __future__ import annotations

import logging
import os
import platform
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from controller.profiles import load_fleet
from lab.layout import REPO_ROOT, LabLayout
from lab.state import MachineRecord

__all__ = ["GEMMA_FILE", "link_group_vars", "node_profile", "write_inventory"]

log = logging.getLogger(__name__)

REPO_GROUP_VARS = REPO_ROOT / "inventory" / "group_vars"
# The file name of the lab's model (Gemma 3 270M) in the catalog and the mirror.
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"


def node_profile(machine: MachineRecord, lab_name: str) -> dict[str, Any]:
    """Return the node_profile.yaml content of a lab machine."""
    return {
        "node_id": machine.name,
        "address": machine.address,
        "roles": list(machine.roles),
        "ram_gb": machine.ram_gb,
        "cpus": os.cpu_count() or 1,
        "arch": platform.machine(),
        "tier": machine.tier,
        "labels": {"lab": lab_name},
    }


def _write_yaml(path: Path, data: object, header: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    path.write_text(f"---\n# {header}\n{body}", encoding="utf-8")


def link_group_vars(source: Path, target: Path) -> None:
    """Link every file of the group_vars directory ``source`` (and of its
    subdirectories) into ``target``, with relative links."""
    for entry in sorted(source.iterdir()):
        if entry.is_dir():
            link_group_vars(entry, target / entry.name)
            continue
        link = target / entry.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(os.path.relpath(entry, link.parent))


def _lab_vars(layout: LabLayout) -> dict[str, Any]:
    options = [
        f"-o UserKnownHostsFile={shlex.quote(str(layout.known_hosts))}",
        "-o StrictHostKeyChecking=yes",
        "-o IdentitiesOnly=yes",
    ]
    return {
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(layout.private_key),
        "ansible_ssh_common_args": " ".join(options),
        # Every lab machine has the base tree's python3; no discovery needed.
        "ansible_python_interpreter": "/usr/bin/python3",
        # The inventory directory is rewritten whenever a machine comes or
        # goes, so the secrets live beside it, in the state directory.
        "cluster_secrets_dir": str(layout.secrets_dir),
        # The control node serves the lab's model files from the controller.
        "controller_mirror_enabled": True,
        "controller_mirror_files": [str(layout.cache_dir / "models" / GEMMA_FILE)],
        # Prometheus on the controller, so that the dashboard is tested on the lab.
        "monitoring_enabled": True,
        "monitoring_scrape_interval": "5s",
    }


def write_inventory(
    layout: LabLayout,
    machines: Sequence[MachineRecord],
    lab_name: str,
    group_vars: Path = REPO_GROUP_VARS,
) -> None:
    """Write the lab's inventory: one profile per machine (and none for a
    machine that is gone), cluster.yml, the repository's group variables
    linked, and zz-lab.yml with the connection settings, the secrets
    directory and the model mirror's files.

    Raises controller.profiles.ProfileError if a written profile is invalid.
    """
    shutil.rmtree(layout.inventory_dir, ignore_errors=True)
    for machine in machines:
        path = layout.nodes_dir / f"{machine.name}.yaml"
        _write_yaml(path, node_profile(machine, lab_name), "Node profile of a lab machine.")
    cluster = {"plugin": "node_profiles", "profiles_dir": "nodes"}
    _write_yaml(layout.cluster_file, cluster, "The lab's inventory, built by node_profiles.")
    if group_vars.is_dir():
        link_group_vars(group_vars, layout.inventory_dir / "group_vars")
    header = "How Ansible reaches the lab's machines (written by the lab)."
    _write_yaml(layout.lab_vars_file, _lab_vars(layout), header)
    load_fleet(layout.nodes_dir)
    log.info("inventory %s: %d machines", layout.cluster_file, len(machines))
