"""The controller's entry point: its process settings."""

from __future__ import annotations

import resource
import subprocess
import sys

from controller.registry import HealthPolicy
from controller.settings import ControllerSettings
from tests.services import ROOT


def test_open_files_limit_is_raised_to_the_hard_limit() -> None:
    """A process that starts at a low soft limit ends at its hard limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    code = (
        "import resource; from controller.__main__ import raise_open_files_limit; "
        "raise_open_files_limit(); print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    low = (
        "import resource; "
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, "
        "resource.getrlimit(resource.RLIMIT_NOFILE)[1])); "
    )
    done = subprocess.run(
        [sys.executable, "-c", low + code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert int(done.stdout) == hard


def test_keep_alive_outlasts_two_heartbeat_intervals() -> None:
    """Idle connections stay open past two intervals, and never under uvicorn's 5 s."""
    settings = ControllerSettings("redis://x", ROOT, ROOT, ROOT)
    assert settings.keep_alive_s == 11
    quick = ControllerSettings("redis://x", ROOT, ROOT, ROOT, policy=HealthPolicy(interval_s=0.5))
    assert quick.keep_alive_s == 5
