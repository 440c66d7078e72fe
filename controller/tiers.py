"""The tier model: which tier a node is in, which queues it consumes, and
which queue a run's requirements need.

The tiers and queue names come from ``controller/data/tiers.yml``, the one
place they are defined; Ansible reads the same file as group variables.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "TIERS_FILE",
    "Tier",
    "TierError",
    "TierModel",
    "load_tier_model",
    "tier_model",
]

TIERS_FILE = Path(__file__).parent / "data" / "tiers.yml"


class TierError(ValueError):
    """A value that the tier model cannot place: unknown tier, RAM below every
    floor, or requirements no tier can serve."""


@dataclass(frozen=True)
class Tier:
    name: str
    queue: str
    min_ram_gb: float


@dataclass(frozen=True)
class TierModel:
    """Tiers ordered from smallest to largest, plus the two shared queues."""

    tiers: tuple[Tier, ...]
    gpu_queue: str
    any_queue: str

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(tier.name for tier in self.tiers)

    @property
    def queues(self) -> tuple[str, ...]:
        """Every queue of the cluster: the tiers' queues, GPU, then any."""
        return (*(tier.queue for tier in self.tiers), self.gpu_queue, self.any_queue)

    def tier(self, name: str) -> Tier:
        """Return the tier called ``name``; raise TierError if there is none."""
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise TierError(f"unknown tier {name!r}; expected one of {', '.join(self.names)}")

    def tier_for_ram(self, ram_gb: float) -> Tier:
        """Return the largest tier whose RAM floor ``ram_gb`` reaches."""
        reached = [tier for tier in self.tiers if ram_gb >= tier.min_ram_gb]
        if not reached:
            floor = self.tiers[0]
            raise TierError(
                f"{ram_gb} GB of RAM is below the {floor.name} floor of "
                f"{floor.min_ram_gb} GB, the smallest a node may have"
            )
        return reached[-1]

    def node_tier(self, ram_gb: float, tier: str | None = None) -> Tier:
        """Return a node's tier: the explicit ``tier`` if given, else from RAM."""
        if tier is not None:
            return self.tier(tier)
        return self.tier_for_ram(ram_gb)

    def node_queues(self, tier: str, gpu: bool = False) -> list[str]:
        """Return the queues a node consumes, in the order it should read them.

        The GPU queue first for a GPU node, then its own tier's queue, every
        lower tier's from larger to smaller, and the any queue last.
        """
        own = self.names.index(self.tier(tier).name)
        lower_and_own = [t.queue for t in reversed(self.tiers[: own + 1])]
        return [*([self.gpu_queue] if gpu else []), *lower_and_own, self.any_queue]

    def smallest_tier_for(self, ram_gb: float) -> Tier:
        """Return the smallest tier whose every node has at least ``ram_gb``.

        A tier guarantees its floor and no more, so a need above the largest
        floor cannot be placed on any tier queue.
        """
        for tier in self.tiers:
            if tier.min_ram_gb >= ram_gb:
                return tier
        largest = self.tiers[-1]
        raise TierError(
            f"needs {ram_gb} GB of RAM; the largest tier, {largest.name}, "
            f"guarantees {largest.min_ram_gb} GB"
        )

    def queue_for(self, ram_gb: float = 0.0, gpu: bool = False) -> str:
        """Return the queue of the smallest tier that can serve the needs."""
        if gpu:
            return self.gpu_queue
        return self.smallest_tier_for(ram_gb).queue

    def queue_tier(self, queue: str) -> Tier | None:
        """Return the tier whose queue is ``queue``, or None for GPU and any."""
        for tier in self.tiers:
            if tier.queue == queue:
                return tier
        if queue in (self.gpu_queue, self.any_queue):
            return None
        raise TierError(f"unknown queue {queue!r}; expected one of {', '.join(self.queues)}")


def _parse(data: Mapping[str, Any], source: str) -> TierModel:
    try:
        tiers = tuple(
            Tier(str(t["name"]), str(t["queue"]), float(t["min_ram_gb"]))
            for t in data["cluster_tiers"]
        )
        model = TierModel(tiers, str(data["cluster_gpu_queue"]), str(data["cluster_any_queue"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise TierError(f"{source}: not a valid tier file: {exc!r}") from exc
    floors = [tier.min_ram_gb for tier in tiers]
    if not tiers or floors != sorted(set(floors)):
        raise TierError(f"{source}: cluster_tiers must be listed with rising min_ram_gb")
    return model


def load_tier_model(path: Path = TIERS_FILE) -> TierModel:
    """Read a tier file; raise TierError if it is malformed."""
    with path.open(encoding="utf-8") as stream:
        data = yaml.safe_load(stream)
    if not isinstance(data, Mapping):
        raise TierError(f"{path}: expected a mapping of cluster_* keys")
    return _parse(data, str(path))


@functools.cache
def tier_model() -> TierModel:
    """Return the cluster's tier model, read once from the packaged file."""
    return load_tier_model()
