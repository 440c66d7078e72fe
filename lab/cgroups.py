"""One cgroup per lab machine, so that each machine's systemd manages a
tree of its own, the whole machine can be killed at once, and whether it
still runs is a question the kernel answers."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import time
from pathlib import Path

from lab.errors import LabError

__all__ = [
    "cgroup_roots",
    "join_cgroups",
    "kill_cgroups",
    "lab_cgroups",
    "machine_cgroups",
    "pids",
    "populated",
    "prepare_cgroups",
    "remove_cgroups",
]

log = logging.getLogger(__name__)


def cgroup_roots(mountinfo: Path = Path("/proc/self/mountinfo")) -> list[Path]:
    """Return the mount points of the cgroup v2 hierarchy and, on a hybrid
    host, of the v1 ``name=systemd`` one; the v2 one first."""
    roots: list[Path] = []
    for line in mountinfo.read_text(encoding="utf-8").splitlines():
        mount_point = line.split()[4]
        fstype, _source, options = line.split(" - ", 1)[1].split()[:3]
        if fstype == "cgroup2":
            roots.insert(0, Path(mount_point))
        elif fstype == "cgroup" and "name=systemd" in options.split(","):
            roots.append(Path(mount_point))
    return roots


def lab_cgroups(lab: str) -> list[Path]:
    """Return the parent cgroup of all lab ``lab``'s machines, per hierarchy."""
    return [root / f"rolab-{lab}" for root in cgroup_roots()]


def machine_cgroups(lab: str, machine: str) -> list[Path]:
    """Return ``machine``'s cgroup in each hierarchy, the v2 one first."""
    return [parent / machine for parent in lab_cgroups(lab)]


def _tree(cgroup: Path) -> list[Path]:
    """Return ``cgroup`` and every cgroup below it, deepest first."""
    if not cgroup.is_dir():
        return []
    below = [Path(top) / name for top, dirs, _ in os.walk(cgroup) for name in dirs]
    return [*sorted(below, key=lambda path: len(path.parts), reverse=True), cgroup]


def _procs(group: Path) -> list[int]:
    """Return the ids of the processes directly in ``group``.

    A cgroup that is removed while we read it (its machine's systemd tearing
    down units as it halts) held no processes: the kernel removes only empty
    cgroups. Its file is then gone (ENOENT) or no longer readable (ENODEV).
    """
    try:
        text = (group / "cgroup.procs").read_text(encoding="utf-8")
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENODEV):
            return []
        raise
    return [int(pid) for pid in text.split()]


def pids(cgroups: list[Path]) -> set[int]:
    """Return the ids of the processes in these cgroups and below them."""
    return {pid for top in cgroups for group in _tree(top) for pid in _procs(group)}


def populated(cgroups: list[Path]) -> bool:
    """Return whether any process lives in these cgroups or below them."""
    return bool(pids(cgroups))


def remove_cgroups(cgroups: list[Path]) -> None:
    """Remove these cgroups and those below them; they must be empty.

    Raises LabError if a cgroup still holds processes.
    """
    for top in cgroups:
        for group in _tree(top):
            try:
                group.rmdir()
            except FileNotFoundError:
                pass  # removed by the machine's own systemd as it halted
            except OSError as exc:
                raise LabError(f"cgroup {group}: cannot be removed: {exc}") from exc


def prepare_cgroups(cgroups: list[Path]) -> None:
    """Create these (empty) cgroups, removing what a previous boot left."""
    remove_cgroups(cgroups)
    for group in cgroups:
        group.mkdir(parents=True)


def join_cgroups(cgroups: list[Path]) -> None:
    """Move the calling process into these cgroups (run it in the child,
    before exec)."""
    for group in cgroups:
        (group / "cgroup.procs").write_text(str(os.getpid()), encoding="utf-8")


def kill_cgroups(cgroups: list[Path], timeout: float = 10.0) -> None:
    """SIGKILL every process in these cgroups and wait until they are gone.

    Raises LabError if processes remain after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while populated(cgroups):
        if time.monotonic() > deadline:
            raise LabError(f"cgroup {cgroups[0]}: processes survive SIGKILL")
        kill_file = cgroups[0] / "cgroup.kill"
        if kill_file.exists():
            kill_file.write_text("1", encoding="utf-8")
        else:
            for pid in pids(cgroups):
                _kill(pid)
        time.sleep(0.05)
    log.debug("cgroup %s: empty", cgroups[0] if cgroups else "-")


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
