"""Filters over the cluster's tier model, built on controller.tiers."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: tiers
short_description: The tier of a node, its queues, and the queue a model needs
description:
  - C(node_tier) returns the tier of a node profile (a mapping as in
    C(inventory/nodes/*.yaml)).
  - C(node_queues) returns the queues a node of a tier consumes, in order;
    pass C(gpu=true) for a GPU node.
  - C(model_queue) returns the queue of the smallest tier that can serve a
    model's requirements (a mapping with C(ram_gb) and optional C(gpu)).
"""

EXAMPLES = r"""
- name: Show where a 4 GB board goes
  ansible.builtin.debug:
    msg: "{{ {'node_id': 'pi-1', 'address': '10.0.0.5', 'roles': ['worker'],
             'ram_gb': 3.8, 'cpus': 4, 'arch': 'aarch64'} | node_tier }}"  # micro

- name: Show the queues of a small GPU node
  ansible.builtin.debug:
    msg: "{{ 'small' | node_queues(gpu=true) }}"

- name: Show the queue a catalog model needs
  ansible.builtin.debug:
    msg: "{{ model_catalog['gemma3-270m'] | model_queue }}"
"""


def _importable() -> None:
    """Make the controller package importable: installed, or this checkout.

    The filters import it only when called, because Ansible loads every
    filter plugin in the worker process of each task that uses any filter."""
    if importlib.util.find_spec("controller") is None:  # a checkout, not installed
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _filter(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turn the tier model's errors into AnsibleFilterError naming the filter."""

    def wrap(function: Callable[..., Any]) -> Callable[..., Any]:
        def run(value: Any, *args: Any, **kwargs: Any) -> Any:
            _importable()
            from controller.profiles import ProfileError
            from controller.tiers import TierError

            try:
                return function(value, *args, **kwargs)
            except (TierError, ProfileError, TypeError, ValueError) as exc:
                raise AnsibleFilterError(f"{name}: {value!r}: {exc}") from None

        run.__doc__ = function.__doc__
        return run

    return wrap


@_filter("node_tier")
def node_tier(profile: Mapping[str, Any]) -> str:
    """Return the tier name of a node profile."""
    from controller.profiles import parse_profile

    return parse_profile(profile, source="profile").tier


@_filter("node_queues")
def node_queues(tier: str, gpu: bool = False) -> list[str]:
    """Return the queues a node of ``tier`` consumes, in reading order."""
    from controller.tiers import tier_model

    if not isinstance(gpu, bool):
        raise TypeError(f"gpu must be true or false, got {gpu!r}")
    return tier_model().node_queues(str(tier), gpu)


@_filter("model_queue")
def model_queue(requirements: Mapping[str, Any]) -> str:
    """Return the queue of the smallest tier that can serve ``requirements``."""
    if not isinstance(requirements, Mapping):
        raise TypeError("expected a mapping with ram_gb and optional gpu")
    ram_gb = requirements.get("ram_gb", 0)
    gpu = requirements.get("gpu", False)
    if isinstance(ram_gb, bool) or not isinstance(ram_gb, int | float) or ram_gb < 0:
        raise TypeError(f"ram_gb must be a number of at least 0, got {ram_gb!r}")
    if not isinstance(gpu, bool):
        raise TypeError(f"gpu must be true or false, got {gpu!r}")
    from controller.tiers import tier_model

    return tier_model().queue_for(float(ram_gb), gpu)


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"node_tier": node_tier, "node_queues": node_queues, "model_queue": model_queue}
