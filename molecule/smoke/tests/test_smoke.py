"""What the smoke scenario's play leaves on each lab machine."""

from __future__ import annotations

import os

from testinfra.host import Host
from testinfra.utils.ansible_runner import AnsibleRunner

INVENTORY = AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
testinfra_hosts = INVENTORY.get_hosts("all")


def test_sshd_is_running(host: Host) -> None:
    """sshd runs and is enabled on the machine."""
    sshd = host.service("ssh")
    assert sshd.is_running
    assert sshd.is_enabled


def test_python3_is_present(host: Host) -> None:
    """python3 is installed, as Ansible needs it."""
    assert host.exists("python3")


def test_machines_reach_each_other_by_address(host: Host) -> None:
    """The machine pings every machine of the scenario by its address."""
    for name in testinfra_hosts:
        address = INVENTORY.get_variables(name)["ansible_host"]
        assert host.run(f"ping -c1 -W2 {address}").rc == 0, f"{name} at {address}"


def test_play_installed_jq_and_wrote_motd(host: Host) -> None:
    """The converge play's package, directory and motd are in place."""
    assert host.package("jq").is_installed
    assert host.file("/srv/research").is_directory
    assert "a lab machine" in host.file("/etc/motd").content_string
