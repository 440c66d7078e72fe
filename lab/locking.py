"""File locks that keep two lab commands from working on one thing at once."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from lab.errors import LabError

__all__ = ["hold_lock"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def hold_lock(path: Path, *, wait: bool) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the ``with`` block.

    With ``wait`` it blocks until the lock is free; without, it raises
    LabError naming the process that holds it. The lock goes with the
    process, so a crashed command never leaves it taken.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as handle:
        flags = fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB
        try:
            fcntl.flock(handle, flags)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise LabError(
                f"{path}: another lab command (pid {holder}) is working on this lab; "
                "wait for it to finish"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        log.debug("lock %s: taken", path)
        yield
