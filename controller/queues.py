"""What waits in the queues: depth and the age of the oldest run of each."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

import redis

__all__ = ["queue_figures"]


def queue_figures(
    client: redis.Redis, queues: Iterable[str], now: float | None = None
) -> list[tuple[str, int, float | None]]:
    """Return (queue, depth, seconds its oldest run has waited) for each queue;
    the wait is None for an empty queue or a message of unknown origin."""
    names = list(queues)
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.llen(name)
        pipe.lindex(name, -1)  # Celery pushes left and pops right: the oldest
    replies = pipe.execute()
    now = time.time() if now is None else now
    return [
        (name, int(depth), _wait_of(client, oldest, now))
        for name, depth, oldest in zip(names, replies[::2], replies[1::2], strict=True)
    ]


def _wait_of(client: redis.Redis, message: bytes | None, now: float) -> float | None:
    if not message:
        return None
    try:
        run_id = json.loads(message)["headers"]["id"]
    except (ValueError, KeyError, TypeError):
        return None
    submitted = client.hget(f"run:{run_id}", "submitted_at")
    return round(now - float(submitted), 3) if submitted else None
