"""The tier model as HashiCorp Nomad jobs: the path beyond one controller.

Each Nomad client carries its tier as ``meta.research_tier`` (from its node
profile), and each queue becomes a parameterized batch job constrained to
nodes of that tier or a larger one, as workers of larger tiers read smaller
tiers' queues; the GPU queue asks for a GPU device. A dispatched job carries
a run's spec as its payload and runs ``python -m worker.execute_payload``, so
the same tier data and the same run execution serve both systems.

    python -m controller.nomad > research-jobs.json   # then: nomad job validate

This module only writes the specifications; nothing here talks to Nomad.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from controller.tiers import TierModel, tier_model

__all__ = ["job_for_queue", "jobs"]

_VENV_PYTHON = "/opt/research-orchestration/venv/bin/python"


def _task(queue: str, memory_mb: int, gpu: bool) -> dict[str, Any]:
    resources: dict[str, Any] = {"CPU": 1000, "MemoryMB": memory_mb}
    if gpu:
        resources["Devices"] = [{"Name": "nvidia/gpu", "Count": 1}]
    return {
        "Name": "run",
        "Driver": "raw_exec",
        "Config": {
            "command": _VENV_PYTHON,
            "args": ["-m", "worker.execute_payload", "${NOMAD_TASK_DIR}/spec.json"],
        },
        "DispatchPayload": {"File": "spec.json"},
        "Env": {"RESEARCH_QUEUE": queue},
        "Resources": resources,
    }


def job_for_queue(queue: str, model: TierModel | None = None) -> dict[str, Any]:
    """Return the Nomad job (API JSON form) that serves ``queue``."""
    model = model or tier_model()
    tier = model.queue_tier(queue)
    gpu = queue == model.gpu_queue
    floor_gb = tier.min_ram_gb if tier else model.tiers[0].min_ram_gb
    job: dict[str, Any] = {
        "ID": queue,
        "Name": queue,
        "Type": "batch",
        "Priority": 50,
        "ParameterizedJob": {"Payload": "required", "MetaOptional": ["run_id"]},
        "TaskGroups": [
            {
                "Name": "run",
                "Count": 1,
                "RestartPolicy": {"Attempts": 0, "Mode": "fail"},
                "ReschedulePolicy": {"Attempts": 2, "Interval": 3600000000000, "Unlimited": False},
                "Tasks": [_task(queue, int(floor_gb * 1024 * 0.8), gpu)],
            }
        ],
    }
    if tier is not None:
        # A tier's queue may run on its own pool or any larger one, as workers
        # of larger tiers read smaller tiers' queues.
        pools = [t.name for t in model.tiers if t.min_ram_gb >= tier.min_ram_gb]
        job["Constraints"] = [
            {
                "LTarget": "${meta.research_tier}",
                "Operand": "set_contains_any",
                "RTarget": ",".join(pools),
            }
        ]
    return job


def jobs(model: TierModel | None = None) -> list[dict[str, Any]]:
    """Return one job per queue of the cluster."""
    model = model or tier_model()
    return [job_for_queue(queue, model) for queue in model.queues]


if __name__ == "__main__":
    json.dump({"Jobs": [{"Job": job} for job in jobs()]}, sys.stdout, indent=2)
    sys.stdout.write("\n")
