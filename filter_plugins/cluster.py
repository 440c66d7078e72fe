"""Filters the roles use to derive per-node values on the control node."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: cluster
short_description: A worker's API token; the catalog models a node's queues need
description:
  - C(worker_token) returns the bearer token of a node, derived from the
    controller's worker secret (C(w1.<node_id>.<hmac-sha256>)), so that the
    control node hands each worker its token without the controller storing it.
  - C(catalog_for_queues) returns the names of the catalog models whose queue
    (the smallest tier that holds them, or C(research-gpu)) is among C(queues).
"""

EXAMPLES = r"""
- name: Write the worker's token
  ansible.builtin.copy:
    content: "{{ cluster_worker_secret | worker_token(node_id) }}"
    dest: /etc/research-orchestration/worker.token
    mode: "0600"
  no_log: true

- name: Show the models a micro worker pulls
  ansible.builtin.debug:
    msg: "{{ model_catalog | catalog_for_queues(['research-micro', 'research-any']) }}"
"""


def _importable() -> None:
    """Make the controller package importable: installed, or this checkout.

    The filters import it only when called. Ansible loads every filter
    plugin in the worker process of each task that uses any filter, and
    controller.auth alone pulls in redis: imported at load time, it cost
    about 0.2 s of the control node's CPU per task of a playbook."""
    if importlib.util.find_spec("controller") is None:  # a checkout, not installed
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def worker_token(secret: str, node_id: str) -> str:
    """Return the API token of ``node_id`` under the worker ``secret``."""
    if not isinstance(secret, str) or len(secret.strip()) < 32:
        raise AnsibleFilterError("worker_token: the worker secret must be at least 32 characters")
    if not isinstance(node_id, str) or not node_id:
        raise AnsibleFilterError(f"worker_token: expected a node id, got {node_id!r}")
    _importable()
    from controller.auth import worker_token as derive_worker_token

    return derive_worker_token(secret.strip().encode(), node_id)


def _queue_of(name: str, entry: Any) -> str:
    from controller.tiers import TierError, tier_model

    if not isinstance(entry, Mapping):
        raise AnsibleFilterError(f"catalog_for_queues: model {name!r}: expected a mapping")
    try:
        return tier_model().queue_for(float(entry.get("ram_gb", 0)), bool(entry.get("gpu")))
    except (TierError, TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"catalog_for_queues: model {name!r}: {exc}") from None


def catalog_for_queues(catalog: Mapping[str, Any], queues: Sequence[str]) -> list[str]:
    """Return the sorted names of ``catalog`` models served by any of ``queues``."""
    if not isinstance(catalog, Mapping):
        raise AnsibleFilterError("catalog_for_queues: expected the model catalog mapping")
    _importable()
    wanted = set(queues)
    return sorted(name for name, entry in catalog.items() if _queue_of(name, entry) in wanted)


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"worker_token": worker_token, "catalog_for_queues": catalog_for_queues}
