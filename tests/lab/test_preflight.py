"""Hosts that cannot run the lab get a clear message before anything is built."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lab.layout import REPO_ROOT
from lab.preflight import TOOL_PACKAGES


def _lab(tmp_path: Path, env: dict[str, str], *prefix: str) -> subprocess.CompletedProcess[str]:
    argv = [*prefix, sys.executable, "-m", "lab", "--state-dir", str(tmp_path / "state"), "up"]
    return subprocess.run(
        argv, capture_output=True, text=True, cwd=REPO_ROOT, env=env, check=False
    )


def test_missing_tool_names_its_debian_package(tmp_path: Path) -> None:
    """Without systemd-nspawn on PATH, up names it and the package to
    install, and creates nothing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOL_PACKAGES:
        found = shutil.which(tool)
        if found and tool != "systemd-nspawn":
            (bin_dir / tool).symlink_to(found)
    result = _lab(tmp_path, {**os.environ, "PATH": str(bin_dir)})
    assert result.returncode == 1
    assert "systemd-nspawn not found on PATH" in result.stderr
    assert "apt-get install systemd-container" in result.stderr
    assert not (tmp_path / "state").exists()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root")
def test_unprivileged_user_is_told_to_be_root(tmp_path: Path) -> None:
    """Run as an ordinary user, up says that the lab needs root."""
    tmp_path.chmod(0o777)
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    result = _lab(tmp_path, dict(os.environ), *drop)
    assert result.returncode == 1, result.stderr
    assert "the lab needs root" in result.stderr
    assert not (tmp_path / "state").exists()
