"""Why a queued run is waiting, in the spirit of Slurm's pending reasons."""

from __future__ import annotations

from typing import Any

from controller.dispatcher import Dispatcher

__all__ = ["pending_reason"]


def pending_reason(
    dispatcher: Dispatcher, queue: str, depth: int, model: str | None = None
) -> dict[str, Any]:
    """Return ``{"code", "text"}`` saying why runs on ``queue`` wait.

    Codes: ``Unavailable`` (no available node reads the queue: none registered,
    or all draining, stale, lost or unhealthy), ``Resources`` (every available
    node is busy), ``Priority`` (other runs are ahead of it), ``Starting`` (an
    idle node reads it; the run is about to start).
    """
    check = dispatcher.check_queue(queue, model)
    available, busy = check.counts.get("available", 0), check.counts.get("busy", 0)
    if not available:
        return {"code": "Unavailable", "text": check.reason}
    if busy >= available:
        return {
            "code": "Resources",
            "text": f"all {available} available nodes reading {queue} are busy",
        }
    if depth > 1:
        return {
            "code": "Priority",
            "text": f"{depth} runs wait on {queue}; {available - busy} idle nodes read it",
        }
    return {"code": "Starting", "text": f"an idle node reads {queue}; the run starts shortly"}
