"""What the lab needs from the host, checked before anything is built."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lab.errors import LabError

__all__ = ["TOOL_PACKAGES", "check_requirements", "missing_requirements"]

# Every program the lab runs, and the Debian package that provides it.
TOOL_PACKAGES = {
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "journalctl": "systemd",
    "ip": "iproute2",
    "iptables": "iptables",
    "nsenter": "util-linux",
    "mount": "mount",
    "umount": "mount",
    "tar": "tar",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
}


def _missing_tools() -> list[str]:
    missing = [tool for tool in TOOL_PACKAGES if shutil.which(tool) is None]
    packages = sorted({TOOL_PACKAGES[tool] for tool in missing})
    if not missing:
        return []
    return [
        f"{', '.join(missing)} not found on PATH; install the Debian "
        f"package(s): apt-get install {' '.join(packages)}"
    ]


def _kernel_problems() -> list[str]:
    problems = []
    filesystems = Path("/proc/filesystems").read_text(encoding="utf-8")
    if "overlay" not in filesystems:
        problems.append("the kernel has no overlayfs; load it with: modprobe overlay")
    if "cgroup2" not in Path("/proc/self/mountinfo").read_text(encoding="utf-8"):
        problems.append("no cgroup v2 hierarchy is mounted (unified or hybrid layout needed)")
    return problems


def missing_requirements() -> list[str]:
    """Return one line per unmet requirement (root, programs, kernel
    features); an empty list when the lab can run here."""
    problems = []
    if os.geteuid() != 0:
        problems.append(
            "the lab needs root: it mounts file systems, creates network devices "
            "and boots machines; run it as root (sudo)"
        )
    return problems + _missing_tools() + _kernel_problems()


def check_requirements() -> None:
    """Return if the lab can run here; raise LabError listing every unmet
    requirement otherwise."""
    problems = missing_requirements()
    if problems:
        raise LabError("the lab cannot run on this host:\n  " + "\n  ".join(problems))
