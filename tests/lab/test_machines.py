"""The default lab's machines: booted, reachable, provisionable."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from pathlib import Path

import pytest
from testinfra.host import Host

from lab import Lab
from lab.layout import REPO_ROOT

pytestmark = pytest.mark.lab

ANSIBLE = Path(os.environ.get("VIRTUAL_ENV", REPO_ROOT / ".venv")) / "bin"


def _ansible(lab: Lab, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg")}
    command = [str(ANSIBLE / argv[0]), "-i", str(lab.layout.cluster_file), *argv[1:]]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


def test_machines_run_systemd_and_sshd(lab_hosts: dict[str, Host]) -> None:
    """Each machine boots to 'running' with systemd as PID 1, sshd active,
    python3 present and its own name as hostname."""
    assert sorted(lab_hosts) == ["lab-controller", "lab-micro-1", "lab-small-1"]
    for name, host in lab_hosts.items():
        state = host.run("systemctl is-system-running --wait").stdout.strip()
        assert state == "running", f"{name}: {state}"
        assert host.file("/proc/1/comm").content_string.strip() == "systemd"
        assert host.service("ssh").is_running
        assert host.file("/usr/bin/python3").exists
        assert host.check_output("hostname") == name


def test_machines_reach_each_other_by_address_and_name(
    running_lab: Lab, lab_hosts: dict[str, Host]
) -> None:
    """Every machine pings every other one by address and by name."""
    for source, target in itertools.permutations(lab_hosts, 2):
        address = running_lab.address(target)
        for destination in (address, target):
            result = lab_hosts[source].run(f"ping -c1 -W2 {destination}")
            assert result.rc == 0, f"{source} -> {destination}: {result.stdout}{result.stderr}"


def test_apt_get_update_works_through_nat(lab_hosts: dict[str, Host]) -> None:
    """apt-get update inside a machine reaches the Debian mirror via NAT."""
    result = lab_hosts["lab-micro-1"].run("apt-get update -q")
    assert result.rc == 0, result.stderr


def test_exec_runs_inside_a_machine_without_ssh(running_lab: Lab) -> None:
    """Lab.run runs a command inside a machine through nsenter."""
    result = running_lab.run("lab-controller", ["cat", "/etc/hostname"])
    assert result.stdout == "lab-controller\n"


def test_inventory_is_built_by_the_node_profiles_plugin(running_lab: Lab) -> None:
    """ansible-inventory builds the lab's groups, tiers and queues from its
    node profiles, with the repository's group variables."""
    result = _ansible(running_lab, "ansible-inventory", "--list")
    assert result.returncode == 0, result.stderr
    inventory = json.loads(result.stdout)
    assert inventory["controller"]["hosts"] == ["lab-controller"]
    assert inventory["tier_micro"]["hosts"] == ["lab-micro-1"]
    assert inventory["tier_small"]["hosts"] == ["lab-small-1"]
    small = inventory["_meta"]["hostvars"]["lab-small-1"]
    # ansible-core marks strings set by an inventory plugin as unsafe.
    assert small["ansible_host"] == {"__ansible_unsafe": running_lab.address("lab-small-1")}
    assert "cluster_tiers" in small


def test_ansible_reaches_every_machine(running_lab: Lab) -> None:
    """ansible -m ping succeeds on all machines of the lab's inventory."""
    result = _ansible(running_lab, "ansible", "all", "-m", "ansible.builtin.ping")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 3
