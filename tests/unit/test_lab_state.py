"""The lab's state file and cgroup discovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.cgroups import cgroup_roots
from lab.errors import LabError
from lab.state import LabState, MachineRecord, load_state, save_state


def _record(name: str, index: int) -> MachineRecord:
    return MachineRecord(name, index, f"10.0.0.{index}", ["worker"], "micro", 3.8, "ns", "if")


def test_state_round_trips_through_its_file(tmp_path: Path) -> None:
    """A saved state loads back equal."""
    state = LabState("abcdef", "lab", "rolababcdef", "10.150.7.0/24", "/tree")
    state.machines["m"] = _record("m", 0)
    save_state(tmp_path / "state.json", state)
    assert load_state(tmp_path / "state.json") == state


def test_missing_state_is_none_and_a_broken_one_is_refused(tmp_path: Path) -> None:
    """No file means no lab; a corrupt file is named in the error."""
    assert load_state(tmp_path / "state.json") is None
    (tmp_path / "state.json").write_text("{", encoding="utf-8")
    with pytest.raises(LabError, match="not a lab state file"):
        load_state(tmp_path / "state.json")


def test_free_index_reuses_gaps() -> None:
    """The smallest unused machine number is handed out."""
    state = LabState("abcdef", "lab", "br", "10.150.7.0/24", "/tree")
    assert state.free_index() == 0
    state.machines = {"a": _record("a", 0), "c": _record("c", 2)}
    assert state.free_index() == 1


def test_cgroup_roots_finds_v2_and_the_systemd_hierarchy(tmp_path: Path) -> None:
    """On a hybrid host both the v2 and the name=systemd mounts are found, v2 first."""
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "30 25 0:26 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n"
        "31 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "29 25 0:25 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
        encoding="utf-8",
    )
    assert cgroup_roots(mountinfo) == [
        Path("/sys/fs/cgroup/unified"),
        Path("/sys/fs/cgroup/systemd"),
    ]
