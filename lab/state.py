"""A lab's state file: which machines it has, where, and whether they run."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lab.errors import LabError

__all__ = ["LabState", "MachineRecord", "load_state", "save_state"]


@dataclass
class MachineRecord:
    """One machine of a running lab, as the state file keeps it."""

    name: str
    index: int
    address: str
    roles: list[str]
    tier: str
    ram_gb: float
    netns: str
    host_if: str
    host_key: str = ""
    pid: int = 0
    cut: bool = False


@dataclass
class LabState:
    """The lab as a whole: its id, network and machines."""

    lab_id: str
    name: str
    bridge: str
    subnet: str
    base_tree: str
    forwarding_turned_on: bool = False
    machines: dict[str, MachineRecord] = field(default_factory=dict)

    def free_index(self) -> int:
        """Return the smallest machine number not yet in use."""
        used = {machine.index for machine in self.machines.values()}
        return next(index for index in range(len(used) + 1) if index not in used)


def load_state(path: Path) -> LabState | None:
    """Return the state saved in ``path``, or None if there is none.

    Raises LabError if the file exists but cannot be read as a lab state.
    """
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        machines = {name: MachineRecord(**record) for name, record in data["machines"].items()}
        return LabState(**{**data, "machines": machines})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LabError(f"{path}: not a lab state file ({exc}); remove it to start over") from exc


def save_state(path: Path, state: LabState) -> None:
    """Write ``state`` to ``path`` atomically (a crash leaves the old file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".tmp")
    staging.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
    os.replace(staging, path)
