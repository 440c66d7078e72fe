"""Scale: a simulated fleet heartbeating against one controller, growing to 10,000.

For fleets of 1,000, 2,500, 5,000 and 10,000 nodes, each node heartbeats
every 5 s (the default interval) at its own phase, on a keep-alive connection
of its own as a worker does, for 60 s, from load processes on this machine
(see benchmarks.beats). Measured per fleet: the time
from a heartbeat being due to its answer (p50, p99), errors (timeouts after
the worker's 5 s, refusals), the nodes the registry holds stale at the end,
and the CPU the controller process and Redis used. The reference of each
fleet is the interval itself: a heartbeat must answer well within it.

    .venv/bin/python benchmarks/scale.py [--fleets 1000 2500 5000 10000] [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.beats import node_name  # noqa: E402
from benchmarks.cluster import bench_cluster  # noqa: E402
from benchmarks.common import Latency, Row, arguments, command, record  # noqa: E402
from benchmarks.load import Load, register_simulated, run_load  # noqa: E402
from controller.registry import HealthPolicy, Registry  # noqa: E402

NAME = "scale"
TARGET = 10_000
AIM = 0.2  # p99 from due to answer, as a share of the interval
SATURATED = 0.85  # CPU share of one core at which a single-threaded process is full


@dataclass
class Step:
    fleet: int
    load: Load
    stale: int
    interval_s: float
    api_workers: int

    @property
    def delay(self) -> Latency | None:
        return Latency.of(self.load.delays) if len(self.load.delays) > 1 else None

    @property
    def error_share(self) -> float:
        return self.load.failed / max(1, self.load.sent)

    @property
    def met(self) -> bool:
        delay = self.delay
        return (
            delay is not None
            and delay.p99 <= AIM * self.interval_s
            and self.load.failed == 0
            and self.stale == 0
        )

    @property
    def cpu_per_beat_ms(self) -> float:
        """Controller CPU per answered heartbeat, in milliseconds."""
        return self.load.cpu_s.get("controller", 0.0) / max(1, self.load.ok) * 1e3

    @property
    def controllers(self) -> str:
        n = self.api_workers
        return "one controller process" if n == 1 else f"{n} controller processes"


def stale_nodes(registry: Registry, fleet: int, policy: HealthPolicy) -> int:
    """Count the fleet's nodes whose last heartbeat is older than the TTL now."""
    ids = [node_name(i) for i in range(fleet)]
    scores = registry.redis.zmscore(Registry.key("heartbeats"), ids)
    oldest = time.time() - policy.ttl_s
    return sum(1 for score in scores if score is None or score < oldest)


def run(fleets: list[int], args: argparse.Namespace, api_workers: int) -> list[Step]:
    """Drive each fleet in turn against one controller service; return each step."""
    steps = []
    env = {
        "RESEARCH_HEARTBEAT_INTERVAL_S": f"{args.interval:g}",
        "RESEARCH_API_WORKERS": str(api_workers),
    }
    with bench_cluster(**env) as lab:
        registry = Registry(lab.redis.client())
        registered = 0
        for fleet in fleets:
            register_simulated(registry, fleet, first=registered)
            registered = fleet
            load = run_load(
                "paced",
                lab.api_url,
                fleet,
                args.processes,
                args.seconds,
                watch={"controller": lab.controller.process.pid, "redis": lab.redis.process.pid},
                secret_file=lab.files.directory / "worker.secret",
                interval=args.interval,
            )
            stale = stale_nodes(registry, fleet, HealthPolicy())
            steps.append(Step(fleet, load, stale, args.interval, api_workers))
            print(describe(steps[-1]))
    return steps


def describe(step: Step) -> str:
    delay = step.delay
    shown = delay.show() if delay else "no answers"
    errors = ", ".join(f"{n} {kind}" for kind, n in step.load.errors.items()) or "none"
    return (
        f"{step.fleet:,} nodes, {step.controllers}: due -> answer {shown}; "
        f"{step.load.ok:,} of {step.load.sent:,} answered, errors: {errors}; "
        f"{step.stale:,} stale at the end; CPU (share of one core) controller "
        f"{step.load.cpu_share('controller'):.0%}, load {step.load.cpu_share('load'):.0%}, "
        f"Redis {step.load.cpu_share('redis'):.0%}; machine {step.load.machine_busy:.0%} "
        f"busy, {step.load.machine_steal:.0%} stolen by the host"
    )


def rows(steps: list[Step], seconds: float) -> list[Row]:
    table = []
    for step in steps:
        delay = step.delay
        p99 = delay.p99 if delay else float("inf")
        table.append(
            Row(
                NAME,
                f"{step.fleet:,} nodes heartbeating every {step.interval_s:g} s for "
                f"{seconds:g} s, {step.controllers}",
                f"due -> answer {delay.show() if delay else 'no answers'}; errors "
                f"{step.error_share:.1%} of {step.load.sent:,}; {step.stale:,} nodes stale; "
                f"controller CPU {step.load.cpu_share('controller'):.0%} of a core, "
                f"machine {step.load.machine_busy:.0%} busy ({step.load.machine_steal:.0%} "
                "stolen by the host)",
                f"the heartbeat interval, {step.interval_s:g} s",
                round(p99 / step.interval_s, 3),
                f"p99 <= {AIM} x interval, no errors, no stale node",
                step.met,
                command(),
            )
        )
    single = [step for step in steps if step.api_workers == 1]
    largest = max((step.fleet for step in single if step.met), default=0)
    table.append(
        Row(
            NAME,
            "largest fleet one controller process served within the aim",
            f"{largest:,} nodes",
            f"the fleet aimed at, {TARGET:,} nodes",
            round(largest / TARGET, 3),
            f">= {TARGET:,} nodes",
            largest >= TARGET,
            command(),
        )
    )
    return table


def cause(step: Step, cores: int) -> str:
    """Say, from a step's CPU figures, what held its heartbeats back."""
    load = step.load
    controller, redis_share = load.cpu_share("controller"), load.cpu_share("redis")
    ours = controller + redis_share + load.cpu_share("load")
    steal, softirq = load.machine_steal * cores, load.machine_softirq * cores
    other = max(0.0, load.machine_busy * cores - ours - steal - softirq)
    if controller >= SATURATED * step.api_workers:
        return (
            f"the controller's CPU ({controller:.0%} of a core in {step.api_workers} "
            "process(es), each bound to one core by Python's GIL)"
        )
    if redis_share >= SATURATED:
        return f"Redis's CPU ({redis_share:.0%} of its one core)"
    if load.machine_busy >= SATURATED:
        return (
            f"the machine's CPU: its {cores} cores were {load.machine_busy:.0%} busy, the "
            f"controller {controller:.0%} of a core, the load processes "
            f"{load.cpu_share('load'):.0%}, Redis {redis_share:.0%}, the kernel's packet "
            f"handling {softirq:.0%}, the host's other machines (steal) {steal:.0%} and "
            f"other processes {other:.0%} (shares of one core), so the controller never "
            "had a core to itself"
        )
    return (
        f"the controller's one event loop: no CPU was full (machine "
        f"{load.machine_busy:.0%} busy, controller {controller:.0%} of a core), but the "
        "loop spends the rest of its time waiting, in line, on the two Redis calls of "
        "every heartbeat (the token check and the heartbeat itself)"
    )


def findings(steps: list[Step], cores: int) -> list[str]:
    """Return the limit, what broke first and the next step, from the measurements."""
    single = [step for step in steps if step.api_workers == 1]
    failed = next((step for step in single if not step.met), None)
    if failed is None:
        return [f"Every fleet up to {single[-1].fleet:,} nodes stayed within the aim."]
    served = [step for step in single if step.met]
    limit = f"{served[-1].fleet:,} nodes served within the aim" if served else "none within"
    answered = f"p99 due -> answer {failed.delay.p99 * 1e3:,.0f} ms" if failed.delay else "none"
    offered = failed.fleet / failed.interval_s
    # The busiest step answered shows what a heartbeat costs under load.
    busy = max((step for step in single if step.load.ok), key=lambda step: step.load.ok)
    per_core = 1e3 / busy.cpu_per_beat_ms if busy.cpu_per_beat_ms else 0.0
    notes = [
        f"Limit: {limit}; at {failed.fleet:,} nodes ({offered:,.0f} heartbeats/s offered) "
        f"one controller process answered {failed.load.ok / failed.load.duration_s:,.0f}/s, "
        f"{answered}, {failed.error_share:.1%} of heartbeats unanswered within the "
        f"worker's 5 s timeout, {failed.stale:,} nodes stale at the end.",
        f"What breaks first: {cause(failed, cores)}. Heartbeats then wait, past the "
        "timeout the workers give up on them, and live nodes turn stale, which the "
        "dispatcher then avoids.",
        f"Capacity of one core: a heartbeat costs the controller {busy.cpu_per_beat_ms:.2f} ms "
        f"of CPU (measured at {busy.fleet:,} nodes), so one controller process with a core "
        f"of its own answers at most about {per_core:,.0f}/s: "
        f"{per_core * failed.interval_s:,.0f} nodes at a {failed.interval_s:g} s interval "
        f"with no headroom, {per_core * failed.interval_s / 2:,.0f} with 50%.",
    ]
    more = [step for step in steps if step.api_workers > 1]
    if more:
        step = more[0]
        shown = f"p99 {step.delay.p99 * 1e3:,.0f} ms" if step.delay else "no answers"
        notes.append(
            f"Next step, measured: with {step.api_workers} controller processes "
            f"(RESEARCH_API_WORKERS={step.api_workers}) the {step.fleet:,}-node fleet got "
            f"{shown}, {step.error_share:.1%} unanswered, {step.stale:,} nodes stale "
            f"({'within' if step.met else 'not within'} the aim) on the same {cores} cores; "
            f"what held it back: {cause(step, cores)}. Beyond that: a controller host with a "
            "core per API process (the registry is in Redis, so they share nothing else), "
            "a longer heartbeat interval for large fleets (the TTL scales with it), then "
            "controllers on several hosts behind one address."
        )
    return notes


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--fleets", type=int, nargs="+", default=[1000, 2500, 5000, 10000])
    parser.add_argument("--seconds", type=float, default=60.0, help="per fleet")
    parser.add_argument("--interval", type=float, default=5.0, help="heartbeat interval, s")
    parser.add_argument("--processes", type=int, default=4, help="load processes")
    parser.add_argument(
        "--next-step-workers",
        type=int,
        default=2,
        help="API processes to retry the first fleet that failed with (1: no retry)",
    )
    args = parser.parse_args()
    if args.quick:
        args.fleets, args.seconds, args.interval = [20], 2.0, 1.0
    began = time.monotonic()
    steps = run(sorted(args.fleets), args, api_workers=1)
    failed = next((step for step in steps if not step.met), None)
    if args.quick:
        failed = steps[-1]
    if failed is not None and args.next_step_workers > 1:
        steps += run([failed.fleet], args, api_workers=args.next_step_workers)
    notes = findings(steps, os.cpu_count() or 1)
    for note in notes:
        print(note)
    table = rows(steps, args.seconds)
    path = record(NAME, table, notes, results=args.results, seconds=time.monotonic() - began)
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
