"""Run commands on the host: one place that logs them and turns their
failures into LabError."""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Sequence

from lab.errors import LabError

__all__ = ["run"]

log = logging.getLogger(__name__)


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float | None = 300,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with its output captured as text and return the result.

    Raises LabError if the program is missing, if it runs past ``timeout``
    seconds, or (with ``check``) if it exits non-zero; the message carries
    the command and its stderr.
    """
    command = shlex.join(argv)
    log.debug("host: %s", command)
    try:
        result = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]}: command not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{command}: no answer after {timeout} s") from exc
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise LabError(f"{command}: exit {result.returncode}: {detail}")
    return result
