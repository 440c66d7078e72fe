"""Faults injected into a running lab: kill, restart, cut, restore, add."""

from __future__ import annotations

import subprocess

import pytest
from testinfra.host import Host

from lab import Lab, LabError, make_spec

pytestmark = pytest.mark.lab


def _ssh_answers(lab: Lab, name: str) -> bool:
    argv = lab.ssh_argv(name, ["true"])
    return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode == 0


def _running(lab: Lab, name: str) -> bool:
    return next(status.running for status in lab.status() if status.name == name)


def test_killed_machine_restarts_with_its_address_and_disk(
    running_lab: Lab, lab_hosts: dict[str, Host]
) -> None:
    """A killed machine stops answering; restarted, it has the same address
    and the files written before the kill."""
    address = running_lab.address("lab-micro-1")
    lab_hosts["lab-micro-1"].check_output("echo before-kill > /root/marker && sync")
    running_lab.kill("lab-micro-1")
    try:
        assert not _running(running_lab, "lab-micro-1")
        assert not _ssh_answers(running_lab, "lab-micro-1")
    finally:
        running_lab.restart("lab-micro-1")
    assert running_lab.address("lab-micro-1") == address
    assert lab_hosts["lab-micro-1"].file("/root/marker").content_string == "before-kill\n"


def test_stopped_machine_shuts_down_and_restarts(running_lab: Lab) -> None:
    """stop halts a machine cleanly; restart brings it back answering SSH."""
    running_lab.stop("lab-small-1")
    try:
        assert not _running(running_lab, "lab-small-1")
    finally:
        running_lab.restart("lab-small-1")
    assert _running(running_lab, "lab-small-1")
    assert _ssh_answers(running_lab, "lab-small-1")


def test_cut_machine_is_unreachable_until_restored(
    running_lab: Lab, lab_hosts: dict[str, Host]
) -> None:
    """A cut machine keeps running but neither the host nor the other
    machines reach it; after restore they do again."""
    address = running_lab.address("lab-small-1")
    running_lab.cut("lab-small-1")
    try:
        assert _running(running_lab, "lab-small-1")
        assert lab_hosts["lab-controller"].run(f"ping -c1 -W1 {address}").rc != 0
        assert not _ssh_answers(running_lab, "lab-small-1")
    finally:
        running_lab.restore("lab-small-1")
    assert lab_hosts["lab-controller"].run(f"ping -c1 -W2 {address}").rc == 0
    assert _ssh_answers(running_lab, "lab-small-1")


def test_added_machine_joins_hosts_and_inventory(
    running_lab: Lab, lab_hosts: dict[str, Host]
) -> None:
    """A machine added to a running lab gets a profile, is known by name to
    the other machines, and is gone again after remove."""
    running_lab.add(make_spec("lab-micro-2", ("worker",), "micro"))
    try:
        profile = running_lab.layout.nodes_dir / "lab-micro-2.yaml"
        assert "tier: micro" in profile.read_text(encoding="utf-8")
        assert lab_hosts["lab-controller"].run("ping -c1 -W2 lab-micro-2").rc == 0
        assert _ssh_answers(running_lab, "lab-micro-2")
    finally:
        running_lab.remove("lab-micro-2")
    assert not (running_lab.layout.nodes_dir / "lab-micro-2.yaml").exists()
    assert "lab-micro-2" not in lab_hosts["lab-controller"].file("/etc/hosts").content_string


def test_machine_that_fails_to_join_is_forgotten(running_lab: Lab) -> None:
    """An added machine that does not answer in time is named in the error
    and removed again; the rest of the lab stays up."""
    impatient = Lab(running_lab.layout.state_dir, boot_timeout=0.01)
    with pytest.raises(LabError, match="machine lab-micro-3: sshd did not answer"):
        impatient.add(make_spec("lab-micro-3", ("worker",), "micro"))
    assert [status.name for status in running_lab.status()] == [
        "lab-controller",
        "lab-micro-1",
        "lab-small-1",
    ]
    assert not (running_lab.layout.nodes_dir / "lab-micro-3.yaml").exists()
    assert all(status.running for status in running_lab.status())
