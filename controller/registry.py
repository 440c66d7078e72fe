"""The worker registry: capabilities, heartbeats, health and drain, in Redis.

Each write is one Lua script, so concurrent heartbeats, registrations and
drains never see or leave a half-updated node. A node's state is derived from
its last heartbeat when read, so no sweeper is needed to make a silent node
stale or lost; ``newly_lost`` lets the controller act once on each loss.

Keys (``registry:`` prefix):

- ``node:<id>``: hash of capabilities and status fields;
- ``heartbeats``: sorted set, node id scored by its last heartbeat time;
- ``queue:<queue>`` and ``model:<name>``: sets of the nodes consuming a queue
  and holding a model, so the dispatcher never scans the whole fleet;
- ``draining``, ``unhealthy`` and ``busy``: sets of node ids;
- ``lost``: sorted set of nodes already handled as lost.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

import redis

__all__ = [
    "PREFIX",
    "HealthPolicy",
    "NodeCapabilities",
    "NodeState",
    "NodeView",
    "Registered",
    "Registry",
    "UnknownNode",
]

logger = logging.getLogger(__name__)
PREFIX = "registry:"


def text(value: bytes | str) -> str:
    """Return a Redis reply as text, whether the client decodes or not."""
    return value.decode() if isinstance(value, bytes) else value


class NodeState(StrEnum):
    READY = "ready"
    BUSY = "busy"
    DRAINING = "draining"
    STALE = "stale"
    LOST = "lost"


class UnknownNode(LookupError):
    """A node id that has never registered (or was deregistered)."""


@dataclass(frozen=True)
class HealthPolicy:
    """When a silent node becomes stale, then lost.

    A node is stale once ``ttl_s`` passes without a heartbeat and lost once
    ``ttl_s + grace_s`` passes; its next heartbeat makes it healthy again.
    """

    interval_s: float = 5.0
    ttl_s: float = 15.0
    grace_s: float = 15.0

    def state_of(self, age_s: float, draining: bool, busy: bool) -> NodeState:
        if age_s > self.ttl_s + self.grace_s:
            return NodeState.LOST
        if age_s > self.ttl_s:
            return NodeState.STALE
        if draining:
            return NodeState.DRAINING
        return NodeState.BUSY if busy else NodeState.READY


@dataclass(frozen=True)
class NodeCapabilities:
    """What a worker reports about itself when it registers."""

    node_id: str
    tier: str
    queues: Sequence[str]
    ram_gb: float
    cpus: int
    arch: str
    gpu: bool = False
    gpu_memory_gb: float = 0.0
    models: Mapping[str, str] = field(default_factory=dict)  # name -> sha256
    version: str = ""
    address: str = ""
    hostname: str = ""


@dataclass(frozen=True)
class Registered:
    """The registry's answer to a registration."""

    draining: bool
    abandoned_run: str | None


@dataclass(frozen=True)
class NodeView:
    """A node as the registry sees it now."""

    capabilities: NodeCapabilities
    state: NodeState
    last_heartbeat: float
    registered_at: float
    run_id: str | None
    consuming: Sequence[str]
    problems: Sequence[str]
    drain: Mapping[str, Any] | None

    @property
    def node_id(self) -> str:
        return self.capabilities.node_id

    @property
    def available(self) -> bool:
        """True when the node can take new runs: fresh, not draining, healthy."""
        return self.state in (NodeState.READY, NodeState.BUSY) and not self.problems

    def as_dict(self, now: float) -> dict[str, Any]:
        caps = self.capabilities
        return {
            "node_id": caps.node_id,
            "state": self.state.value,
            "tier": caps.tier,
            "queues": list(caps.queues),
            "ram_gb": caps.ram_gb,
            "cpus": caps.cpus,
            "arch": caps.arch,
            "gpu": caps.gpu,
            "gpu_memory_gb": caps.gpu_memory_gb,
            "models": dict(caps.models),
            "version": caps.version,
            "address": caps.address,
            "hostname": caps.hostname,
            "registered_at": self.registered_at,
            "last_heartbeat": self.last_heartbeat,
            "heartbeat_age_s": round(max(0.0, now - self.last_heartbeat), 3),
            "run_id": self.run_id,
            "consuming": list(self.consuming),
            "problems": list(self.problems),
            "drain": dict(self.drain) if self.drain else None,
        }


# KEYS: node hash, heartbeats, draining, unhealthy, lost, prefix (for sets)
# ARGV: node id, now, capability fields as JSON, queues JSON, models JSON
_REGISTER = """
local node, beats, draining, unhealthy, lost = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local prefix, id, now = ARGV[1], ARGV[2], ARGV[3]
local old_queues = redis.call('HGET', node, 'queues')
local old_models = redis.call('HGET', node, 'models')
if old_queues then
  for _, q in ipairs(cjson.decode(old_queues)) do redis.call('SREM', prefix..'queue:'..q, id) end
end
if old_models then
  for m, _ in pairs(cjson.decode(old_models)) do redis.call('SREM', prefix..'model:'..m, id) end
end
local fields = cjson.decode(ARGV[4])
for k, v in pairs(fields) do redis.call('HSET', node, k, v) end
if not redis.call('HGET', node, 'registered_at') then
  redis.call('HSET', node, 'registered_at', now)
end
redis.call('HSET', node, 'last_heartbeat', now)
for _, q in ipairs(cjson.decode(fields['queues'])) do
  redis.call('SADD', prefix..'queue:'..q, id)
end
for m, _ in pairs(cjson.decode(fields['models'])) do
  redis.call('SADD', prefix..'model:'..m, id)
end
redis.call('SADD', prefix..'nodes', id)
redis.call('ZADD', beats, now, id)
redis.call('ZREM', lost, id)
-- A worker registers when it starts, so it runs nothing now: whatever run it
-- reported before is one its previous life left unfinished.
local previous = redis.call('HGET', node, 'run_id') or ''
redis.call('HSET', node, 'run_id', '')
redis.call('SREM', prefix..'busy', id)
return {redis.call('HGET', node, 'draining') or '0', previous}
"""

# KEYS: node hash, heartbeats, unhealthy, lost, busy
# ARGV: id, now, run id ('' for none), consuming JSON, problems JSON
_HEARTBEAT = """
local node, beats, unhealthy, lost = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, now = ARGV[1], ARGV[2]
if redis.call('EXISTS', node) == 0 then return false end
local previous = redis.call('HGET', node, 'run_id') or ''
if previous ~= ARGV[3] then redis.call('HSET', node, 'run_started_at', now) end
redis.call('HSET', node, 'last_heartbeat', now, 'run_id', ARGV[3],
           'consuming', ARGV[4], 'problems', ARGV[5])
redis.call('ZADD', beats, now, id)
redis.call('ZREM', lost, id)
if ARGV[5] == '[]' then
  redis.call('SREM', unhealthy, id)
else
  redis.call('SADD', unhealthy, id)
end
if ARGV[3] == '' then
  redis.call('SREM', KEYS[5], id)
else
  redis.call('SADD', KEYS[5], id)
end
return {redis.call('HGET', node, 'draining') or '0', redis.call('HGET', node, 'drain') or ''}
"""

# KEYS: node hash, draining set.  ARGV: '1' or '0', drain record JSON
_DRAIN = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if ARGV[1] == '1' then
  redis.call('HSET', KEYS[1], 'draining', '1', 'drain', ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[3])
else
  redis.call('HSET', KEYS[1], 'draining', '0', 'drain', '')
  redis.call('SREM', KEYS[2], ARGV[3])
end
return 1
"""

# KEYS: node hash, heartbeats, draining, unhealthy, lost. ARGV: prefix, id
_DEREGISTER = """
local node, prefix, id = KEYS[1], ARGV[1], ARGV[2]
if redis.call('EXISTS', node) == 0 then return false end
for _, q in ipairs(cjson.decode(redis.call('HGET', node, 'queues') or '[]')) do
  redis.call('SREM', prefix..'queue:'..q, id)
end
for m, _ in pairs(cjson.decode(redis.call('HGET', node, 'models') or '{}')) do
  redis.call('SREM', prefix..'model:'..m, id)
end
redis.call('DEL', node)
redis.call('ZREM', KEYS[2], id)
redis.call('SREM', KEYS[3], id)
redis.call('SREM', KEYS[4], id)
redis.call('ZREM', KEYS[5], id)
redis.call('SREM', prefix..'nodes', id)
redis.call('SREM', prefix..'busy', id)
return 1
"""

# Nodes silent for longer than the lost threshold and not yet handled.
# KEYS: heartbeats, lost, ARGV: threshold time, now
_NEWLY_LOST = """
local silent = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '('..ARGV[1])
local fresh = {}
for _, id in ipairs(silent) do
  if not redis.call('ZSCORE', KEYS[2], id) then
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    table.insert(fresh, id)
  end
end
return fresh
"""


class Registry:
    """Registration, heartbeats, drain and the fleet's view, backed by Redis."""

    def __init__(self, client: redis.Redis, policy: HealthPolicy | None = None) -> None:
        self.redis = client
        self.policy = policy or HealthPolicy()
        self._register = client.register_script(_REGISTER)
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._drain = client.register_script(_DRAIN)
        self._deregister = client.register_script(_DEREGISTER)
        self._newly_lost = client.register_script(_NEWLY_LOST)

    @staticmethod
    def key(*parts: str) -> str:
        return PREFIX + ":".join(parts)

    def register(self, caps: NodeCapabilities, now: float | None = None) -> Registered:
        """Record or update a node's capabilities.

        Re-registering replaces the capabilities and keeps an operator's drain.
        The answer says whether the node is draining and which run, if any, it
        was executing when it last heartbeated (its restart abandoned it).
        """
        fields = {
            "node_id": caps.node_id,
            "tier": caps.tier,
            "queues": json.dumps(list(caps.queues)),
            "ram_gb": repr(float(caps.ram_gb)),
            "cpus": str(caps.cpus),
            "arch": caps.arch,
            "gpu": "1" if caps.gpu else "0",
            "gpu_memory_gb": repr(float(caps.gpu_memory_gb)),
            "models": json.dumps(dict(caps.models), sort_keys=True) if caps.models else "{}",
            "version": caps.version,
            "address": caps.address,
            "hostname": caps.hostname,
        }
        draining, previous = self._register(
            keys=self._node_keys(caps.node_id),
            args=[PREFIX, caps.node_id, now or time.time(), json.dumps(fields)],
        )
        logger.info(
            "node %s: registered (tier %s, %d models)", caps.node_id, caps.tier, len(caps.models)
        )
        return Registered(draining == b"1", text(previous) or None)

    def heartbeat(
        self,
        node_id: str,
        run_id: str | None = None,
        consuming: Sequence[str] = (),
        problems: Sequence[str] = (),
        now: float | None = None,
    ) -> dict[str, Any] | None:
        """Record a heartbeat; return the node's drain record (None if not
        draining). Raise UnknownNode if the node must register first."""
        node, beats, _, unhealthy, lost = self._node_keys(node_id)
        reply = self._heartbeat(
            keys=[node, beats, unhealthy, lost, self.key("busy")],
            args=[
                node_id,
                now or time.time(),
                run_id or "",
                json.dumps(list(consuming)),
                json.dumps(list(problems)),
            ],
        )
        if reply is None:
            raise UnknownNode(node_id)
        draining, drain = reply
        return cast(dict[str, Any], json.loads(drain)) if draining == b"1" else None

    def drain(self, node_id: str, by: str, reason: str, now: float | None = None) -> None:
        """Mark a node draining, recording who and why; raise UnknownNode."""
        record = {"by": by, "reason": reason, "at": now or time.time()}
        node, _, draining, _, _ = self._node_keys(node_id)
        if not self._drain(keys=[node, draining], args=["1", json.dumps(record), node_id]):
            raise UnknownNode(node_id)
        logger.info("node %s: draining by %s: %s", node_id, by, reason)

    def undrain(self, node_id: str) -> None:
        """Return a draining node to service; raise UnknownNode."""
        node, _, draining, _, _ = self._node_keys(node_id)
        if not self._drain(keys=[node, draining], args=["0", "", node_id]):
            raise UnknownNode(node_id)
        logger.info("node %s: back in service", node_id)

    def deregister(self, node_id: str) -> None:
        """Remove a node and every index entry of it; raise UnknownNode."""
        if not self._deregister(keys=self._node_keys(node_id), args=[PREFIX, node_id]):
            raise UnknownNode(node_id)
        logger.info("node %s: deregistered", node_id)

    def newly_lost(self, now: float | None = None) -> list[str]:
        """Return nodes that became lost since the last call, each only once."""
        now = now or time.time()
        threshold = now - self.policy.ttl_s - self.policy.grace_s
        ids = self._newly_lost(
            keys=[self.key("heartbeats"), self.key("lost")], args=[threshold, now]
        )
        return [i.decode() for i in ids]

    def node(self, node_id: str, now: float | None = None) -> NodeView:
        """Return one node's view; raise UnknownNode."""
        views = self.nodes([node_id], now)
        if not views:
            raise UnknownNode(node_id)
        return views[0]

    def node_ids(self) -> list[str]:
        return sorted(text(m) for m in self.redis.smembers(self.key("nodes")))

    def nodes(self, ids: Iterable[str] | None = None, now: float | None = None) -> list[NodeView]:
        """Return the views of ``ids`` (every node by default) that exist."""
        ids = self.node_ids() if ids is None else list(ids)
        pipe = self.redis.pipeline(transaction=False)
        for node_id in ids:
            pipe.hgetall(self.key("node", node_id))
        now = now or time.time()
        return [self._view(raw, now) for raw in pipe.execute() if raw]

    def members(self, queue: str, model: str | None = None) -> set[str]:
        """Return the nodes consuming ``queue`` (and holding ``model`` if given)."""
        keys = [self.key("queue", queue)] + ([self.key("model", model)] if model else [])
        return {text(m) for m in self.redis.sinter(keys)}

    def _node_keys(self, node_id: str) -> list[str]:
        return [
            self.key("node", node_id),
            self.key("heartbeats"),
            self.key("draining"),
            self.key("unhealthy"),
            self.key("lost"),
        ]

    def _view(self, raw: Mapping[bytes, bytes], now: float) -> NodeView:
        f = {k.decode(): v.decode() for k, v in raw.items()}
        caps = NodeCapabilities(
            node_id=f["node_id"],
            tier=f["tier"],
            queues=json.loads(f["queues"]),
            ram_gb=float(f["ram_gb"]),
            cpus=int(f["cpus"]),
            arch=f["arch"],
            gpu=f["gpu"] == "1",
            gpu_memory_gb=float(f["gpu_memory_gb"]),
            models=json.loads(f["models"]),
            version=f.get("version", ""),
            address=f.get("address", ""),
            hostname=f.get("hostname", ""),
        )
        last = float(f["last_heartbeat"])
        draining = f.get("draining") == "1"
        run_id = f.get("run_id") or None
        return NodeView(
            capabilities=caps,
            state=self.policy.state_of(now - last, draining, run_id is not None),
            last_heartbeat=last,
            registered_at=float(f["registered_at"]),
            run_id=run_id,
            consuming=json.loads(f.get("consuming") or "[]"),
            problems=json.loads(f.get("problems") or "[]"),
            drain=json.loads(f["drain"]) if draining and f.get("drain") else None,
        )
