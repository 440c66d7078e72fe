"""pytest fixtures that give tests a running lab and a testinfra host per
machine. A conftest.py loads them with ``pytest_plugins = ["lab.pytest_plugin"]``.

Tests marked ``lab`` are skipped, with the reason, where the lab cannot run
(not root, a program missing).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import testinfra
from testinfra.host import Host

from lab.access import ssh_options
from lab.layout import REPO_ROOT, default_cache_dir
from lab.lifecycle import Lab
from lab.preflight import missing_requirements

__all__ = [
    "lab_hosts",
    "lab_unavailable",
    "running_lab",
    "session_state_dir",
    "testinfra_host",
]


def lab_unavailable() -> str | None:
    """Return why the lab cannot run on this host, or None if it can."""
    problems = missing_requirements()
    return "lab unavailable: " + "; ".join(problems) if problems else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip the tests marked ``lab`` when the lab cannot run here."""
    reason = lab_unavailable()
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("lab") is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


def testinfra_host(lab: Lab, name: str) -> Host:
    """Return a testinfra host that reaches machine ``name`` over SSH as
    root with the lab's key and known_hosts."""
    options = ssh_options(lab.layout)
    key = options[options.index("-i") + 1]
    extra = " ".join(options[2:])
    return testinfra.get_host(
        f"ssh://root@{lab.address(name)}", ssh_identity_file=key, ssh_extra_args=extra
    )


def session_state_dir() -> Path:
    """Return the state directory of the tests' lab: fixed per checkout and
    apart from the developer's ``.lab``, so that a session killed midway
    is cleaned up by the next one."""
    checkout = hashlib.sha256(str(REPO_ROOT).encode()).hexdigest()[:8]
    return default_cache_dir() / "labs" / f"pytest-{checkout}"


@pytest.fixture(scope="session")
def running_lab() -> Iterator[Lab]:
    """Yield a Lab of the default shape (lab-controller, lab-micro-1,
    lab-small-1) with its own state directory, taken down after the session
    even when tests fail."""
    reason = lab_unavailable()
    if reason is not None:
        pytest.skip(reason)
    lab = Lab(session_state_dir())
    try:
        lab.down()
        lab.up()
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="session")
def lab_hosts(running_lab: Lab) -> dict[str, Host]:
    """Return a testinfra host per machine of ``running_lab``, by name."""
    return {
        status.name: testinfra_host(running_lab, status.name) for status in running_lab.status()
    }
