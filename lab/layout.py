"""Where a lab keeps its files: state, inventory, keys and machine disks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["REPO_ROOT", "LabLayout", "default_cache_dir", "default_state_dir"]

REPO_ROOT = Path(__file__).resolve().parents[1]


def default_cache_dir() -> Path:
    """Return the cache of slow artefacts: ``$CACHE`` or
    ``~/.cache/research-orchestration``."""
    cache = os.environ.get("CACHE")
    return Path(cache) if cache else Path.home() / ".cache" / "research-orchestration"


def default_state_dir() -> Path:
    """Return the state directory of the default lab: ``$LAB_STATE_DIR`` or
    ``.lab`` at the repository root."""
    state = os.environ.get("LAB_STATE_DIR")
    return Path(state) if state else REPO_ROOT / ".lab"


@dataclass(frozen=True)
class LabLayout:
    """The paths of one lab, all under its state directory."""

    state_dir: Path
    cache_dir: Path

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "lock"

    @property
    def inventory_dir(self) -> Path:
        return self.state_dir / "inventory"

    @property
    def nodes_dir(self) -> Path:
        return self.inventory_dir / "nodes"

    @property
    def cluster_file(self) -> Path:
        return self.inventory_dir / "cluster.yml"

    @property
    def lab_vars_file(self) -> Path:
        return self.inventory_dir / "group_vars" / "all" / "lab.yml"

    @property
    def ssh_dir(self) -> Path:
        return self.state_dir / "ssh"

    @property
    def private_key(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        return self.ssh_dir / "config"

    @property
    def machines_dir(self) -> Path:
        return self.state_dir / "machines"

    def machine_dir(self, name: str) -> Path:
        """Return the directory of machine ``name``: its overlay and logs."""
        return self.machines_dir / name

    def machine_root(self, name: str) -> Path:
        """Return the mount point of machine ``name``'s root file system."""
        return self.machine_dir(name) / "root"

    def console_log(self, name: str) -> Path:
        """Return the file that receives machine ``name``'s console output."""
        return self.machine_dir(name) / "console.log"
