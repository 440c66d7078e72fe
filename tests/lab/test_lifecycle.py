"""Labs of their own: teardown, crash leftovers, failed boots, collisions."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lab import Lab, LabError, MachineSpec, make_spec
from lab.locking import hold_lock

pytestmark = pytest.mark.lab


def _host(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def leftovers(lab: Lab) -> list[str]:
    """Return what of ``lab`` is still on the host, read with host tools."""
    found = [f"link {line.split()[0]}" for line in _host("ip", "-br", "link").splitlines()]
    found = [entry for entry in found if lab.bridge in entry]
    found += [f"netns {line}" for line in _host("ip", "netns", "list").splitlines()]
    found = [entry for entry in found if lab.bridge in entry]
    for table in ("nat", "filter"):
        rules = _host("iptables", "-w", "-t", table, "-S").splitlines()
        found += [f"rule {rule}" for rule in rules if f"lab {lab.lab_id}" in rule]
    mounts = Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines()
    found += [f"mount {m}" for m in mounts if str(lab.layout.state_dir) in m]
    cgroup_roots = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))
    found += [f"cgroup {p}" for root in cgroup_roots for p in root.glob(f"rolab-{lab.lab_id}")]
    found += [f"machine dir {p}" for p in [lab.layout.machines_dir] if p.exists()]
    return found


def _one_machine(name: str) -> list[MachineSpec]:
    return [make_spec(f"{name}-1", ("worker",), "micro")]


def test_down_leaves_no_bridge_rule_mount_or_namespace(tmp_path: Path) -> None:
    """After down, nothing of the lab is left on the host, and a second down
    is a no-op."""
    lab = Lab(tmp_path / "state", name="gone")
    try:
        lab.up(_one_machine("gone"))
        assert leftovers(lab), "the lab left no trace while up; the check sees nothing"
    finally:
        lab.down()
    assert leftovers(lab) == []
    lab.down()


def test_down_cleans_up_after_a_crashed_run(tmp_path: Path) -> None:
    """down removes a running lab whose state file was lost, as after a crash."""
    lab = Lab(tmp_path / "state", name="crash")
    try:
        lab.up(_one_machine("crash"))
        lab.layout.state_file.unlink()
    finally:
        lab.down()
    assert leftovers(lab) == []


def test_machine_that_does_not_answer_is_named_and_nothing_is_left(tmp_path: Path) -> None:
    """A machine whose sshd does not answer in time fails up with its name
    and the tail of its console and journal; the lab is taken down."""
    lab = Lab(tmp_path / "state", name="slow", boot_timeout=0.01)
    with pytest.raises(LabError) as failure:
        lab.up(_one_machine("slow"))
    message = str(failure.value)
    assert "machine slow-1: sshd did not answer within 0.01 s" in message
    assert "--- console of slow-1" in message
    assert "--- journal of slow-1" in message
    assert leftovers(lab) == []


def test_second_lab_does_not_collide(running_lab: Lab, tmp_path: Path) -> None:
    """A second lab, another name and state directory, gets its own bridge
    and subnet, and both labs answer at once."""
    other = Lab(tmp_path / "state", name="other")
    try:
        state = other.up(_one_machine("other"))
        assert other.bridge != running_lab.bridge
        assert state.subnet != running_lab.state().subnet  # type: ignore[union-attr]
        for lab, name in ((other, "other-1"), (running_lab, "lab-controller")):
            assert subprocess.run(lab.ssh_argv(name, ["true"]), check=False).returncode == 0
    finally:
        other.down()
    assert leftovers(other) == []


def test_taken_subnet_is_refused(running_lab: Lab, tmp_path: Path) -> None:
    """A lab asked for a subnet in use refuses before creating anything."""
    taken = running_lab.state().subnet  # type: ignore[union-attr]
    lab = Lab(tmp_path / "state", name="clash", subnet=taken)
    with pytest.raises(LabError, match=f"subnet {taken} is taken"):
        lab.up(_one_machine("clash"))
    assert leftovers(lab) == []


def test_lock_refuses_a_second_command(tmp_path: Path) -> None:
    """While one command holds a lab's lock, another is refused at once."""
    lab = Lab(tmp_path / "state", name="locked")
    with hold_lock(lab.layout.lock_file, wait=False), pytest.raises(LabError, match="another"):
        lab.up(_one_machine("locked"))
