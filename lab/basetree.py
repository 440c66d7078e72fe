"""The Debian base tree every lab machine boots from: built once with
debootstrap, cached as a tarball keyed by what it contains, and kept
extracted as the read-only lower layer of the machines' overlays."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError
from lab.locking import hold_lock
from lab.shell import run

__all__ = [
    "BASE_PACKAGES",
    "RECIPE_VERSION",
    "BaseTreeRecipe",
    "debian_mirror",
    "ensure_base_tree",
]

log = logging.getLogger(__name__)

# What Ansible and the roles need on a node: python3 (and python3-apt for
# the apt module), systemd and sshd, sudo, acl (become to another user),
# libgomp1 (llama.cpp's wheel), and tools the tests use.
BASE_PACKAGES = (
    "python3",
    "python3-venv",
    "python3-apt",
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "sudo",
    "acl",
    "iproute2",
    "iputils-ping",
    "netbase",
    "procps",
    "ca-certificates",
    "curl",
    "libgomp1",
    "tzdata",
)

# Bump when _customise (or anything else that shapes the tree) changes, so
# that caches built by the old recipe are not reused.
RECIPE_VERSION = 1

SOURCES_FILE = Path("/etc/apt/sources.list.d/debian.sources")
DEFAULT_MIRROR = "http://deb.debian.org/debian"

# Timers that would take the apt lock, or do disk chores, in the middle of a test.
_MASKED_UNITS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
)

_SSHD_CONFIG = """\
# Written by the lab: each machine gets its own ed25519 host key.
HostKey /etc/ssh/ssh_host_ed25519_key
UseDNS no
"""


@dataclass(frozen=True)
class BaseTreeRecipe:
    """What a base tree contains; its key names the cached tarball."""

    suite: str = "bookworm"
    packages: tuple[str, ...] = BASE_PACKAGES
    version: int = RECIPE_VERSION

    @property
    def key(self) -> str:
        """Return a short hash of the suite, package set and recipe version."""
        content = {
            "suite": self.suite,
            "packages": sorted(set(self.packages)),
            "version": self.version,
        }
        digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode())
        return digest.hexdigest()[:16]

    def tree_dir(self, cache_dir: Path) -> Path:
        """Return where the extracted tree of this recipe lives in the cache."""
        return cache_dir / "basetree" / f"{self.suite}-{self.key}"

    def tarball(self, cache_dir: Path) -> Path:
        """Return where the tarball of this recipe lives in the cache."""
        return cache_dir / "basetree" / f"{self.suite}-{self.key}.tar"


def debian_mirror(suite: str, sources: Path = SOURCES_FILE) -> str:
    """Return the first mirror URI that ``sources`` (deb822) lists for
    ``suite``, or the default Debian mirror when none does."""
    if not sources.is_file():
        return DEFAULT_MIRROR
    for stanza in sources.read_text(encoding="utf-8").split("\n\n"):
        fields = dict(
            line.split(":", 1)
            for line in stanza.splitlines()
            if ":" in line and not line.startswith("#")
        )
        suites = fields.get("Suites", "").split()
        uris = fields.get("URIs", "").split()
        if suite in suites and uris:
            return uris[0]
    return DEFAULT_MIRROR


def ensure_base_tree(cache_dir: Path, recipe: BaseTreeRecipe | None = None) -> Path:
    """Return the extracted base tree of ``recipe``, building or extracting
    it first if the cache lacks it.

    Raises LabError if debootstrap or tar fails; a failed build leaves no
    tree or tarball behind that could pass for a complete one.
    """
    recipe = recipe or BaseTreeRecipe()
    tree = recipe.tree_dir(cache_dir)
    with hold_lock(cache_dir / "basetree" / "lock", wait=True):
        if tree.is_dir():
            log.debug("base tree %s: cached", tree.name)
            return tree
        if recipe.tarball(cache_dir).is_file():
            _extract(recipe.tarball(cache_dir), tree)
        else:
            _build(recipe, cache_dir)
    return tree


def _build(recipe: BaseTreeRecipe, cache_dir: Path) -> None:
    mirror = debian_mirror(recipe.suite)
    log.info("base tree %s: building %s from %s", recipe.key, recipe.suite, mirror)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=cache_dir / "basetree"))
    try:
        staging = work / "tree"
        _debootstrap(recipe, mirror, staging, cache_dir / "basetree" / "build.log")
        _customise(staging)
        _archive(staging, work / "tree.tar")
        os.replace(work / "tree.tar", recipe.tarball(cache_dir))
        os.replace(staging, recipe.tree_dir(cache_dir))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("base tree %s: cached in %s", recipe.key, recipe.tarball(cache_dir))


def _debootstrap(recipe: BaseTreeRecipe, mirror: str, target: Path, log_file: Path) -> None:
    argv = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(recipe.packages)}",
        recipe.suite,
        str(target),
        mirror,
    ]
    result = run(argv, check=False, timeout=1800)
    log_file.write_text(result.stdout + result.stderr, encoding="utf-8")
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        raise LabError(
            f"debootstrap of {recipe.suite} from {mirror} failed (exit "
            f"{result.returncode}); full log in {log_file}:\n{tail}"
        )


def _customise(tree: Path) -> None:
    """Make the tree a template: no host keys or machine id of its own, a
    persistent journal, and no timers that would disturb tests."""
    for key in (tree / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    (tree / "etc" / "ssh" / "sshd_config.d" / "lab.conf").write_text(
        _SSHD_CONFIG, encoding="utf-8"
    )
    (tree / "etc" / "machine-id").write_text("", encoding="utf-8")
    (tree / "var" / "log" / "journal").mkdir(parents=True, exist_ok=True)
    for unit in _MASKED_UNITS:
        link = tree / "etc" / "systemd" / "system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    for package in (tree / "var" / "cache" / "apt" / "archives").glob("*.deb"):
        package.unlink()


def _archive(tree: Path, tarball: Path) -> None:
    run(["tar", "--numeric-owner", "--xattrs", "-C", str(tree), "-cf", str(tarball), "."])


def _extract(tarball: Path, tree: Path) -> None:
    log.info("base tree %s: extracting", tarball.name)
    staging = Path(tempfile.mkdtemp(prefix="extract-", dir=tree.parent))
    try:
        argv = ["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*"]
        run([*argv, "-C", str(staging), "-xf", str(tarball)])
        os.replace(staging, tree)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
