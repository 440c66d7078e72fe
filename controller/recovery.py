"""Give the run of a lost node back to its queue without waiting for Redis.

Celery's Redis transport keeps a delivered, unacknowledged message in the
``unacked`` hash and only restores it after the broker's visibility timeout,
which must exceed the longest run (hours). When the registry declares a node
lost (no heartbeat for TTL plus grace), the controller moves that node's
unacknowledged run back to its queue at once, in one transaction, exactly as
kombu's own restore does. A run is therefore delivered at least once.
"""

from __future__ import annotations

import json
import logging
import threading

import redis

from controller.registry import Registry, UnknownNode

__all__ = ["LostNodeMonitor", "requeue_abandoned", "requeue_unacked"]

logger = logging.getLogger(__name__)
UNACKED = "unacked"
UNACKED_INDEX = "unacked_index"


def _find_tag(client: redis.Redis, run_id: str) -> tuple[str, list[object]] | None:
    for tag, raw in client.hscan_iter(UNACKED):
        try:
            payload, exchange, routing_key = json.loads(raw)
        except ValueError:
            continue
        if payload.get("headers", {}).get("id") == run_id:
            return tag.decode(), [payload, exchange, routing_key]
    return None


def requeue_unacked(client: redis.Redis, run_id: str) -> str | None:
    """Move the unacknowledged message of ``run_id`` back to its queue.

    Return the queue, or None if the run has no unacknowledged message (it
    finished, or was already restored).
    """
    found = _find_tag(client, run_id)
    if found is None:
        return None
    tag, (payload, _, routing_key) = found
    assert isinstance(payload, dict) and isinstance(routing_key, str)
    payload["headers"]["redelivered"] = True
    payload["properties"].setdefault("delivery_info", {})["redelivered"] = True
    with client.pipeline() as pipe:
        pipe.watch(UNACKED)
        if not pipe.hexists(UNACKED, tag):
            return None
        pipe.multi()
        pipe.hdel(UNACKED, tag)
        pipe.zrem(UNACKED_INDEX, tag)
        pipe.rpush(routing_key, json.dumps(payload))
        try:
            pipe.execute()
        except redis.WatchError:
            return None
    return routing_key


def requeue_abandoned(client: redis.Redis, node_id: str, run_id: str) -> str | None:
    """Requeue the run a restarted node was executing; return its queue."""
    queue = requeue_unacked(client, run_id)
    if queue:
        logger.warning(
            "run %s: requeued on %s, node %s restarted during it", run_id, queue, node_id
        )
    return queue


class LostNodeMonitor(threading.Thread):
    """Checks the registry at the heartbeat interval and requeues lost runs."""

    def __init__(self, registry: Registry) -> None:
        super().__init__(name="lost-node-monitor", daemon=True)
        self.registry = registry
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.registry.policy.interval_s):
            try:
                self.check()
            except redis.RedisError as exc:
                logger.warning("lost-node monitor: Redis unavailable: %s", exc)

    def check(self) -> list[tuple[str, str]]:
        """Handle nodes newly lost; return (node, run) pairs that were requeued."""
        requeued = []
        for node_id in self.registry.newly_lost():
            try:
                run_id = self.registry.node(node_id).run_id
            except UnknownNode:
                continue
            logger.warning(
                "node %s: lost (no heartbeat for %.0f s)",
                node_id,
                self.registry.policy.ttl_s + self.registry.policy.grace_s,
            )
            if run_id and (queue := requeue_unacked(self.registry.redis, run_id)):
                logger.warning(
                    "run %s: requeued on %s after node %s was lost", run_id, queue, node_id
                )
                requeued.append((node_id, run_id))
        return requeued

    def stop(self) -> None:
        self.stopping.set()
