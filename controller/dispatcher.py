"""The dispatcher: send each run to the smallest tier that can serve it.

A run that needs a model goes to the queue of the smallest tier whose RAM
floor holds the model and that some available node (fresh heartbeat, not
draining, consuming) holding the model consumes; a GPU model goes to the GPU
queue; a run needing nothing goes to ``research-any``. A run no available
node could serve is refused with the reason, never queued forever. The same
decision, with every tier considered and why it was taken or passed over, is
available as an explanation that queues nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.catalog import Catalog, ModelEntry
from controller.registry import PREFIX, Registry
from controller.tiers import TierModel, tier_model

__all__ = ["Decision", "Dispatcher", "QueueCheck"]

# Classifies the nodes that consume a queue (and hold a model), and says
# whether an available one has the GPU memory asked for (``fits``; any node
# fits when 0 is asked). Unless asked to explain, it walks the smallest of the
# member sets with SSCAN and stops at the first available node that fits, so
# that a decision costs the same with ten nodes per queue or ten thousand.
# When that walk finds none (or to explain), it classifies the whole
# intersection, so that counts and examples are exact.
# KEYS: members set(s) (1 or 2), then heartbeats, draining, unhealthy, busy
# (``busy`` counts the available nodes running a run; it is not a class.)
# ARGV: fresh_after, lost_before, explain ('1'/'0'), examples per class,
#       n member keys, GPU memory needed (GB), node hash key prefix
_CLASSIFY = """
local n = tonumber(ARGV[5])
local member_keys = {}
for i = 1, n do member_keys[i] = KEYS[i] end
local beats, draining, unhealthy, busy = KEYS[n + 1], KEYS[n + 2], KEYS[n + 3], KEYS[n + 4]
local fresh_after, lost_before = tonumber(ARGV[1]), tonumber(ARGV[2])
local explain, limit = ARGV[3] == '1', tonumber(ARGV[4])
local gpu_memory, node_prefix = tonumber(ARGV[6]), ARGV[7]
local fits = false
local counts = {available = 0, draining = 0, stale = 0, lost = 0, unhealthy = 0, busy = 0}
local examples = {available = {}, draining = {}, stale = {}, lost = {}, unhealthy = {}}
local seen = 0
local function classify(id)
  local beat = tonumber(redis.call('ZSCORE', beats, id) or '0')
  local class
  if beat < lost_before then class = 'lost'
  elseif beat < fresh_after then class = 'stale'
  elseif redis.call('SISMEMBER', draining, id) == 1 then class = 'draining'
  elseif redis.call('SISMEMBER', unhealthy, id) == 1 then class = 'unhealthy'
  else class = 'available' end
  seen = seen + 1
  counts[class] = counts[class] + 1
  if #examples[class] < limit then table.insert(examples[class], id) end
  if class == 'available' and redis.call('SISMEMBER', busy, id) == 1 then
    counts.busy = counts.busy + 1
  end
  return class
end
local function serves(id)
  if classify(id) ~= 'available' then return false end
  if gpu_memory <= 0 then return true end
  local has = redis.call('HGET', node_prefix .. id, 'gpu_memory_gb')
  return tonumber(has or '0') >= gpu_memory
end
local function result()
  return cjson.encode({total = seen, counts = counts, examples = examples, fits = fits})
end
if not explain then
  local smallest = 1
  for i = 2, n do
    if redis.call('SCARD', member_keys[i]) < redis.call('SCARD', member_keys[smallest]) then
      smallest = i
    end
  end
  local cursor = '0'
  repeat
    local reply = redis.call('SSCAN', member_keys[smallest], cursor, 'COUNT', 64)
    cursor = reply[1]
    for _, id in ipairs(reply[2]) do
      local member = true
      for i = 1, n do
        if i ~= smallest and redis.call('SISMEMBER', member_keys[i], id) == 0 then
          member = false
          break
        end
      end
      if member and serves(id) then
        fits = true
        return result()
      end
    end
  until cursor == '0'
  counts = {available = 0, draining = 0, stale = 0, lost = 0, unhealthy = 0, busy = 0}
  examples = {available = {}, draining = {}, stale = {}, lost = {}, unhealthy = {}}
  seen = 0
end
for _, id in ipairs(redis.call('SINTER', unpack(member_keys))) do
  if serves(id) then fits = true end
end
return result()
"""

_CLASSES = ("available", "draining", "stale", "lost", "unhealthy")


@dataclass(frozen=True)
class QueueCheck:
    """One queue the dispatcher considered, and what it found there."""

    queue: str
    taken: bool
    reason: str
    counts: Mapping[str, int] = field(default_factory=dict)
    examples: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "taken": self.taken,
            "reason": self.reason,
            "counts": dict(self.counts),
            "examples": {k: list(v) for k, v in self.examples.items() if v},
        }


@dataclass(frozen=True)
class Decision:
    """Where a run goes (``queue``), or why it cannot go anywhere."""

    queue: str | None
    reason: str
    checks: tuple[QueueCheck, ...] = ()
    model: ModelEntry | None = None
    ram_gb: float = 0.0
    gpu: bool = False

    @property
    def refused(self) -> bool:
        return self.queue is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "refused": self.refused,
            "reason": self.reason,
            "model": self.model.name if self.model else None,
            "needs": {"ram_gb": self.ram_gb, "gpu": self.gpu},
            "considered": [check.as_dict() for check in self.checks],
        }


class Dispatcher:
    """Decides a run's queue from the model catalog and the live registry."""

    def __init__(
        self, registry: Registry, catalog: Catalog, tiers: TierModel | None = None
    ) -> None:
        self.registry = registry
        self.catalog = catalog
        self.tiers = tiers or tier_model()
        self._classify = registry.redis.register_script(_CLASSIFY)

    def decide(
        self,
        model: str | None = None,
        ram_gb: float = 0.0,
        gpu: bool = False,
        explain: bool = False,
        now: float | None = None,
    ) -> Decision:
        """Return the decision for a run; with ``explain``, every queue's check."""
        entry = None
        if model is not None:
            if model not in self.catalog:
                known = ", ".join(self.catalog) or "none"
                return Decision(None, f"no such model {model!r}; the catalog has: {known}")
            entry = self.catalog[model]
            ram_gb = max(ram_gb, entry.ram_gb)
            gpu = gpu or entry.gpu
        now = time.time() if now is None else now
        if gpu:
            return self._decide_gpu(entry, ram_gb, explain, now)
        if entry is None and ram_gb <= 0:
            return self._decide_any(explain, now)
        return self._decide_tiers(entry, ram_gb, explain, now)

    def _decide_any(self, explain: bool, now: float) -> Decision:
        queue = self.tiers.any_queue
        check = self._check(queue, None, explain, now, "needs no model")
        reason = check.reason if not check.taken else f"{queue}: the run needs no model"
        return Decision(queue if check.taken else None, reason, (check,))

    def _decide_gpu(
        self, entry: ModelEntry | None, ram_gb: float, explain: bool, now: float
    ) -> Decision:
        queue = self.tiers.gpu_queue
        memory = entry.gpu_memory_gb if entry is not None else 0.0
        check = self._check(queue, entry, explain, now, "needs a GPU", memory)
        reason = f"{queue}: the run needs a GPU" if check.taken else check.reason
        return Decision(queue if check.taken else None, reason, (check,), entry, ram_gb, True)

    def _decide_tiers(
        self, entry: ModelEntry | None, ram_gb: float, explain: bool, now: float
    ) -> Decision:
        checks = []
        for tier in self.tiers.tiers:
            if tier.min_ram_gb < ram_gb:
                reason = (
                    f"{tier.queue}: passed over, the tier guarantees {tier.min_ram_gb} GB "
                    f"and the run needs {ram_gb} GB"
                )
                checks.append(QueueCheck(tier.queue, False, reason))
                continue
            check = self._check(
                tier.queue, entry, explain, now, f"the smallest tier holding {ram_gb} GB"
            )
            checks.append(check)
            if check.taken:
                return Decision(tier.queue, check.reason, tuple(checks), entry, ram_gb)
        return Decision(None, self._refusal(checks, entry, ram_gb), tuple(checks), entry, ram_gb)

    def check_queue(
        self, queue: str, model: str | None = None, now: float | None = None
    ) -> QueueCheck:
        """Return what the nodes reading ``queue`` (holding ``model``) are now,
        classifying every one of them."""
        entry = self.catalog.get(model) if model else None
        return self._check(queue, entry, True, time.time() if now is None else now, "")

    def _check(
        self,
        queue: str,
        entry: ModelEntry | None,
        explain: bool,
        now: float,
        why: str,
        gpu_memory_gb: float = 0.0,
    ) -> QueueCheck:
        keys = [Registry.key("queue", queue)]
        if entry is not None:
            keys.append(Registry.key("model", entry.name))
        policy = self.registry.policy
        found = _decode(
            self._classify(
                keys=[
                    *keys,
                    *(PREFIX + k for k in ("heartbeats", "draining", "unhealthy", "busy")),
                ],
                args=[
                    now - policy.ttl_s,
                    now - policy.ttl_s - policy.grace_s,
                    "1" if explain else "0",
                    5,
                    len(keys),
                    gpu_memory_gb,
                    Registry.key("node", ""),
                ],
            )
        )
        counts, examples = found["counts"], found["examples"]
        holding = f" holding {entry.name}" if entry else ""
        if counts["available"] and not found["fits"]:
            reason = f"{queue}: no available GPU node has {gpu_memory_gb} GB of GPU memory"
            return QueueCheck(queue, False, reason, counts, examples)
        if counts["available"]:
            return QueueCheck(
                queue,
                True,
                f"{queue}: {why}; an available node{holding} consumes it",
                counts,
                examples,
            )
        if not found["total"]:
            reason = f"{queue}: no registered node{holding} consumes it"
        else:
            reason = f"{queue}: every node{holding} consuming it is {_unavailable(examples)}"
        return QueueCheck(queue, False, reason, counts, examples)

    def _refusal(self, checks: list[QueueCheck], entry: ModelEntry | None, ram_gb: float) -> str:
        what = f"model {entry.name!r} ({ram_gb} GB)" if entry else f"a run needing {ram_gb} GB"
        considered = [check for check in checks if check.counts]
        if not considered:
            largest = self.tiers.tiers[-1]
            return (
                f"{what} needs more RAM than any tier guarantees; the largest tier, "
                f"{largest.name}, guarantees {largest.min_ram_gb} GB"
            )
        return f"no available node can serve {what}: " + "; ".join(c.reason for c in considered)


def _decode(raw: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(raw)
    # cjson encodes an empty table as {} rather than [].
    data["examples"] = {k: list(v) if v else [] for k, v in data["examples"].items()}
    return data


def _unavailable(examples: Mapping[str, Sequence[str]]) -> str:
    parts = [
        f"{name} ({', '.join(examples[name])})" for name in _CLASSES[1:] if examples.get(name)
    ]
    return "unavailable: " + "; ".join(parts)
