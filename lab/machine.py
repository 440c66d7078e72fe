"""One lab machine: its overlay root, the files written into it before
boot, the systemd-nspawn process that boots it, and commands run inside."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from lab import cgroups
from lab.access import ssh_argv
from lab.errors import LabError
from lab.layout import LabLayout
from lab.shell import run
from lab.state import MachineRecord

__all__ = [
    "boot",
    "diagnosis",
    "exec_argv",
    "forget",
    "host_resolv_conf",
    "hosts_file",
    "init_pid",
    "is_running",
    "mount_points",
    "mount_root",
    "nspawn_name",
    "stop",
    "unmount",
    "wait_until_ready",
    "write_hosts",
    "write_identity",
]

log = logging.getLogger(__name__)

INSIDE_ENV = [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "LANG=C.UTF-8",
]
PROPAGATE_DIR = Path("/run/systemd/nspawn/propagate")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def mount_points(mountinfo: Path = Path("/proc/self/mountinfo")) -> list[Path]:
    """Return every mount point of this mount namespace."""
    lines = mountinfo.read_text(encoding="utf-8").splitlines()
    return [Path(_unescape(line.split()[4])) for line in lines]


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def mount_root(layout: LabLayout, name: str, lower: Path) -> Path:
    """Mount machine ``name``'s root: ``lower`` read-only under an upper
    directory of its own (kept across restarts). Return the mount point.

    Raises LabError if mount fails.
    """
    machine_dir = layout.machine_dir(name)
    root = layout.machine_root(name)
    for part in ("upper", "work", "root"):
        (machine_dir / part).mkdir(parents=True, exist_ok=True)
    if root not in mount_points():
        options = (
            f"lowerdir={lower},upperdir={machine_dir / 'upper'},workdir={machine_dir / 'work'}"
        )
        run(["mount", "-t", "overlay", "overlay", "-o", options, str(root)])
        log.debug("machine %s: root mounted on %s", name, root)
    return root


def unmount(path: Path) -> None:
    """Unmount ``path`` if something is mounted there; detach it lazily if
    it is busy. Raises LabError if it cannot be unmounted at all."""
    if path not in mount_points():
        return
    if run(["umount", str(path)], check=False).returncode != 0:
        run(["umount", "--lazy", str(path)])


def _write(root: Path, relative: str, text: str, mode: int = 0o644) -> None:
    """Write a file inside a machine's root, never through a symlink that
    could point out of it."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def hosts_file(machines: Sequence[MachineRecord]) -> str:
    """Return /etc/hosts for a lab machine: localhost and every lab machine."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{machine.address}\t{machine.name}" for machine in machines]
    return "\n".join(lines) + "\n"


def host_resolv_conf() -> str:
    """Return the host's resolv.conf for a machine: the one systemd-resolved
    forwards to when the host's own names a stub on loopback, which a
    machine in its own network namespace cannot reach."""
    text = Path("/etc/resolv.conf").read_text(encoding="utf-8")
    upstream = Path("/run/systemd/resolve/resolv.conf")
    if "nameserver 127." in text and upstream.is_file():
        return upstream.read_text(encoding="utf-8")
    return text


def write_hosts(root: Path, hosts: str) -> None:
    """Write /etc/hosts (see hosts_file) into the machine whose root is
    ``root``; a running machine sees it at once."""
    _write(root, "etc/hosts", hosts)


def write_identity(root: Path, name: str, hosts: str, public_key: str) -> None:
    """Write what a machine needs before boot: hostname, hosts, DNS (the
    host's resolv.conf), the lab key for root, and a machine id of its own."""
    _write(root, "etc/hostname", f"{name}\n")
    write_hosts(root, hosts)
    _write(root, "etc/resolv.conf", host_resolv_conf())
    (root / "root" / ".ssh").mkdir(mode=0o700, parents=True, exist_ok=True)
    _write(root, "root/.ssh/authorized_keys", public_key, 0o600)
    if not (root / "etc" / "machine-id").read_text(encoding="utf-8").strip():
        _write(root, "etc/machine-id", uuid.uuid4().hex + "\n", 0o444)


def nspawn_name(lab: str, name: str) -> str:
    """Return the name systemd-nspawn knows machine ``name`` by: unique to
    the lab, so that two labs with the same machine names never share the
    directories nspawn keeps per machine on the host."""
    return f"{name}-{lab}"


def forget(lab: str, name: str) -> None:
    """Remove what systemd-nspawn keeps on the host for a machine and only
    removes itself on a clean exit."""
    shutil.rmtree(PROPAGATE_DIR / nspawn_name(lab, name), ignore_errors=True)


def boot(layout: LabLayout, lab: str, machine: MachineRecord) -> int:
    """Start systemd-nspawn booting ``machine`` in its own cgroup and
    network namespace; return the nspawn process id without waiting.

    Raises LabError if systemd-nspawn cannot be started.
    """
    groups = cgroups.machine_cgroups(lab, machine.name)
    cgroups.prepare_cgroups(groups)
    argv = [
        "systemd-nspawn",
        "--register=no",
        "--keep-unit",
        "--boot",
        f"--machine={nspawn_name(lab, machine.name)}",
        f"--hostname={machine.name}",
        f"--directory={layout.machine_root(machine.name)}",
        f"--network-namespace-path=/run/netns/{machine.netns}",
        "--resolv-conf=off",
        "--link-journal=no",
        "--console=read-only",
    ]
    with layout.console_log(machine.name).open("ab") as console:
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # nspawn must start inside the machine's cgroups, which only
                # the child itself can join before it execs.
                preexec_fn=lambda: cgroups.join_cgroups(groups),  # noqa: PLW1509
            )
        except OSError as exc:
            raise LabError(f"machine {machine.name}: systemd-nspawn did not start: {exc}") from exc
    log.info("machine %s: booting (nspawn pid %d)", machine.name, process.pid)
    return process.pid


def is_running(lab: str, name: str) -> bool:
    """Return whether any process of machine ``name`` is alive."""
    return cgroups.populated(cgroups.machine_cgroups(lab, name))


def init_pid(nspawn_pid: int) -> int:
    """Return the host pid of the machine's PID 1 (the child of nspawn that
    is pid 1 in its own namespace). Raises LabError if there is none."""
    try:
        children = Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children").read_text()
    except OSError:
        children = ""
    for child in children.split():
        status = Path(f"/proc/{child}/status").read_text(encoding="utf-8")
        nspid = next(line for line in status.splitlines() if line.startswith("NSpid:"))
        if nspid.split()[-1] == "1":
            return int(child)
    raise LabError(f"nspawn process {nspawn_pid}: no machine running under it")


def exec_argv(pid: int, argv: Sequence[str]) -> list[str]:
    """Return the command line that runs ``argv`` inside the machine whose
    PID 1 is ``pid``, in all its namespaces, with a clean environment."""
    return ["nsenter", f"--target={pid}", "--all", "--", "env", "-i", *INSIDE_ENV, *argv]


def stop(lab: str, machine: MachineRecord, timeout: float = 30.0) -> None:
    """Shut ``machine`` down cleanly (SIGTERM to nspawn, which halts its
    systemd); SIGKILL whatever is left after ``timeout`` seconds."""
    groups = cgroups.machine_cgroups(lab, machine.name)
    if machine.pid in cgroups.pids(groups):
        with contextlib.suppress(ProcessLookupError):
            os.kill(machine.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while cgroups.populated(groups) and time.monotonic() < deadline:
        time.sleep(0.1)
    cgroups.kill_cgroups(groups)
    cgroups.remove_cgroups(groups)


def _port_open(address: str, port: int = 22) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def _ssh_answers(layout: LabLayout, address: str) -> bool:
    argv = ssh_argv(layout, address, ["true"])
    return run(argv, check=False, timeout=15).returncode == 0


def wait_until_ready(
    layout: LabLayout, lab: str, machines: Sequence[MachineRecord], timeout: float
) -> None:
    """Return once every machine answers ``ssh root@ADDRESS true``.

    Raises LabError naming the first machine that died or did not answer
    within ``timeout`` seconds, with the tail of its console and journal.
    """
    deadline = time.monotonic() + timeout
    waiting = list(machines)
    while waiting:
        for machine in list(waiting):
            if not is_running(lab, machine.name):
                raise LabError(
                    f"machine {machine.name}: stopped while booting\n"
                    + diagnosis(layout, machine.name)
                )
            if _port_open(machine.address) and _ssh_answers(layout, machine.address):
                log.info("machine %s: sshd answers at %s", machine.name, machine.address)
                waiting.remove(machine)
        if waiting and time.monotonic() > deadline:
            name = waiting[0].name
            raise LabError(
                f"machine {name}: sshd did not answer within {timeout:g} s\n"
                + diagnosis(layout, name)
            )
        time.sleep(0.2 if waiting else 0)


def _tail(text: str, lines: int) -> str:
    return "\n".join(_ANSI.sub("", text).splitlines()[-lines:])


def diagnosis(layout: LabLayout, name: str, lines: int = 25) -> str:
    """Return the tail of machine ``name``'s console log and journal, for an
    error message."""
    console = layout.console_log(name)
    text = console.read_text(errors="replace") if console.is_file() else "(no console log)"
    journal_dir = layout.machine_dir(name) / "upper" / "var" / "log" / "journal"
    argv = ["journalctl", "-D", str(journal_dir), "-n", str(lines), "--no-pager", "-q"]
    journal = run(argv, check=False).stdout if journal_dir.is_dir() else ""
    return (
        f"--- console of {name} (last {lines} lines, {console}) ---\n{_tail(text, lines)}\n"
        f"--- journal of {name} (journalctl -D {journal_dir}) ---\n"
        f"{_tail(journal, lines) or '(empty)'}"
    )
