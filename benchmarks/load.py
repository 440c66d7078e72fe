"""Running heartbeat load processes (benchmarks.beats) and summing what they report."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from benchmarks.beats import node_name
from benchmarks.common import cpu_seconds
from controller.registry import NodeCapabilities, Registry
from tests.services import PYTHON, ROOT

__all__ = ["Load", "register_simulated", "run_load"]

_LEAD_S = 2.0  # for the processes to start and import before the common start


@dataclass
class Load:
    """What a set of load processes did, summed."""

    duration_s: float
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    cpu_s: dict[str, float] = field(default_factory=dict)  # watched process -> CPU seconds
    machine_busy: float = 0.0  # share of all the machine's cores busy meanwhile
    # Of all the cores' time: taken by the host for other machines (steal), and
    # spent by the kernel on packets (softirq), which no process is charged for.
    machine_steal: float = 0.0
    machine_softirq: float = 0.0

    @property
    def rate(self) -> float:
        return self.ok / self.duration_s

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    def cpu_share(self, name: str) -> float:
        """CPU seconds of a watched process per second of the load (1.0 = one core)."""
        return self.cpu_s.get(name, 0.0) / self.duration_s


def run_load(
    mode: str,
    target: str,
    count: int,
    processes: int,
    duration_s: float,
    watch: dict[str, int] | None = None,
    **options: object,
) -> Load:
    """Run ``processes`` load processes over ``count`` nodes for ``duration_s``;
    return their sum, with the CPU time the ``watch`` processes (name -> pid,
    with their children) and the load processes themselves (``load``) spent
    meanwhile."""
    start = time.monotonic() + _LEAD_S
    per = count // processes
    extra = [f"--{k.replace('_', '-')}={v}" for k, v in options.items() if v is not None]
    commands = [
        [
            str(PYTHON),
            "-m",
            "benchmarks.beats",
            mode,
            f"--target={target}",
            f"--first={index * per}",
            f"--count={per if index < processes - 1 else count - index * per}",
            f"--duration={duration_s}",
            f"--start={start!r}",
            *extra,
        ]
        for index in range(processes)
    ]
    children = [
        subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE) for command in commands
    ]
    watched = {name: [psutil.Process(pid)] for name, pid in (watch or {}).items()}
    watched["load"] = [psutil.Process(child.pid) for child in children]
    time.sleep(max(0.0, start - time.monotonic()))
    before = {name: cpu_seconds(group) for name, group in watched.items()}
    machine_before = psutil.cpu_times()
    time.sleep(duration_s)
    machine_after = psutil.cpu_times()
    after = {name: cpu_seconds(group) for name, group in watched.items()}
    load = Load(
        duration_s,
        cpu_s={name: after[name] - before[name] for name in watched},
        machine_busy=_busy(machine_before, machine_after),
        machine_steal=_share(machine_before, machine_after, "steal"),
        machine_softirq=_share(machine_before, machine_after, "softirq"),
    )
    for child in children:
        out, _ = child.communicate(timeout=duration_s + 120)
        if child.returncode != 0:
            raise RuntimeError(f"a {mode} load process failed with status {child.returncode}")
        report = json.loads(out)
        load.sent += report["sent"]
        load.ok += report["ok"]
        load.latencies += report["latencies"]
        load.delays += report["delays"]
        for kind, n in report["errors"].items():
            load.errors[kind] = load.errors.get(kind, 0) + n
    return load


def _busy(before: Any, after: Any) -> float:
    """Return the share of CPU time between two system-wide readings that was busy."""
    total = sum(after) - sum(before)
    idle = (after.idle + getattr(after, "iowait", 0.0)) - (
        before.idle + getattr(before, "iowait", 0.0)
    )
    return (total - idle) / total if total > 0 else 0.0


def _share(before: Any, after: Any, field_name: str) -> float:
    """Return the share of all CPU time between two readings spent as ``field_name``."""
    total = sum(after) - sum(before)
    spent = getattr(after, field_name, 0.0) - getattr(before, field_name, 0.0)
    return spent / total if total > 0 else 0.0


def register_simulated(registry: Registry, count: int, first: int = 0) -> None:
    """Register simulated nodes ``first`` to ``count - 1`` (``sim-00000`` on), as
    micro workers, which is what benchmarks.beats reports them consuming."""
    for index in range(first, count):
        registry.register(
            NodeCapabilities(
                node_id=node_name(index),
                tier="micro",
                queues=["research-micro", "research-any"],
                ram_gb=3.8,
                cpus=4,
                arch="aarch64",
            )
        )
