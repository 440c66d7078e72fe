"""How the host reaches lab machines: the lab's SSH keypair, each machine's
host key, a known_hosts file and the ssh options that use them."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from lab.layout import LabLayout
from lab.shell import run

__all__ = [
    "HOST_KEY",
    "ensure_host_key",
    "ensure_keypair",
    "ssh_argv",
    "ssh_options",
    "write_known_hosts",
    "write_ssh_config",
]

log = logging.getLogger(__name__)

HOST_KEY = Path("etc/ssh/ssh_host_ed25519_key")


def ensure_keypair(layout: LabLayout) -> Path:
    """Return the lab's private key, generating the pair on first use.

    Raises LabError if ssh-keygen fails.
    """
    key = layout.private_key
    if not key.is_file():
        key.parent.mkdir(parents=True, exist_ok=True)
        key.parent.chmod(0o700)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lab", "-f", str(key)])
        log.info("ssh: generated the lab key %s", key)
    return key


def ensure_host_key(root: Path) -> str:
    """Return the public host key of the machine whose root is ``root``,
    generating it on first boot. Raises LabError if ssh-keygen fails."""
    key = root / HOST_KEY
    if not key.is_file():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(key)])
    public = key.with_name(key.name + ".pub").read_text(encoding="utf-8").split()
    return " ".join(public[:2])


def ssh_options(layout: LabLayout) -> list[str]:
    """Return the ssh options that log in as root with the lab key, checking
    host keys against the lab's own known_hosts, never prompting."""
    return [
        "-i",
        str(layout.private_key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"UserKnownHostsFile={layout.known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=5",
        "-o",
        "LogLevel=ERROR",
    ]


def ssh_argv(layout: LabLayout, address: str, command: Sequence[str] = ()) -> list[str]:
    """Return the ssh command line that runs ``command`` as root at ``address``."""
    return ["ssh", *ssh_options(layout), f"root@{address}", *command]


def write_known_hosts(layout: LabLayout, hosts: Iterable[tuple[str, str, str]]) -> None:
    """Write the lab's known_hosts from (name, address, public key) triples."""
    lines = [f"{name},{address} {key}\n" for name, address, key in hosts]
    layout.known_hosts.parent.mkdir(parents=True, exist_ok=True)
    layout.known_hosts.write_text("".join(lines), encoding="utf-8")


def write_ssh_config(layout: LabLayout, hosts: Iterable[tuple[str, str]]) -> None:
    """Write an ssh_config so that ``ssh -F <it> NAME`` reaches a machine
    by its lab name, from (name, address) pairs."""
    blocks = [
        f"Host {name}\n"
        f"  HostName {address}\n"
        "  User root\n"
        f"  IdentityFile {layout.private_key}\n"
        "  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {layout.known_hosts}\n"
        "  StrictHostKeyChecking yes\n"
        for name, address in hosts
    ]
    layout.ssh_config.write_text("\n".join(blocks), encoding="utf-8")
