"""Scale: a simulated fleet heartbeating against one controller, growing to 10,000.

For fleets of 1,000, 2,500, 5,000 and 10,000 nodes, each node heartbeats
every 5 s (the default interval) at its own phase, for 60 s, from load
processes on this machine (see benchmarks.beats: a few keep-alive
connections per process, not one per node). Measured per fleet: the time
from a heartbeat being due to its answer (p50, p99), errors (timeouts after
the worker's 5 s, refusals), the nodes the registry holds stale at the end,
and the CPU the controller process and Redis used. The reference of each
fleet is the interval itself: a heartbeat must answer well within it.

    .venv/bin/python benchmarks/scale.py [--fleets 1000 2500 5000 10000] [--seconds 60]
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.beats import node_name  # noqa: E402
from benchmarks.cluster import bench_cluster  # noqa: E402
from benchmarks.common import Latency, Row, arguments, record  # noqa: E402
from benchmarks.load import Load, register_simulated, run_load  # noqa: E402
from controller.registry import HealthPolicy, Registry  # noqa: E402

NAME = "scale"
COMMAND = ".venv/bin/python benchmarks/scale.py"
TARGET = 10_000
AIM = 0.2  # p99 from due to answer, as a share of the interval
SATURATED = 0.85  # CPU share of one core at which a single-threaded process is full


@dataclass
class Step:
    fleet: int
    load: Load
    stale: int
    interval_s: float

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


def stale_nodes(registry: Registry, fleet: int, policy: HealthPolicy) -> int:
    """Count the fleet's nodes whose last heartbeat is older than the TTL now."""
    ids = [node_name(i) for i in range(fleet)]
    scores = registry.redis.zmscore(Registry.key("heartbeats"), ids)
    oldest = time.time() - policy.ttl_s
    return sum(1 for score in scores if score is None or score < oldest)


def run(
    fleets: list[int], seconds: float, interval_s: float, processes: int, connections: int
) -> list[Step]:
    """Drive each fleet in turn against one controller; return what each step saw."""
    steps = []
    env = {"RESEARCH_HEARTBEAT_INTERVAL_S": f"{interval_s:g}"}
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
                processes,
                seconds,
                watch={"controller": lab.controller.process.pid, "redis": lab.redis.process.pid},
                secret_file=lab.files.directory / "worker.secret",
                connections=connections,
                interval=interval_s,
            )
            step = Step(fleet, load, stale_nodes(registry, fleet, HealthPolicy()), interval_s)
            steps.append(step)
            print(describe(step))
    return steps


def describe(step: Step) -> str:
    delay = step.delay
    shown = delay.show() if delay else "no answers"
    errors = ", ".join(f"{n} {kind}" for kind, n in step.load.errors.items()) or "none"
    return (
        f"{step.fleet:,} nodes: due -> answer {shown}; {step.load.ok:,} of "
        f"{step.load.sent:,} answered, errors: {errors}; {step.stale:,} stale at the end; "
        f"CPU controller {step.load.cpu_share('controller'):.0%}, "
        f"Redis {step.load.cpu_share('redis'):.0%}"
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
                f"{seconds:g} s, one controller",
                f"due -> answer {delay.show() if delay else 'no answers'}; errors "
                f"{step.error_share:.1%} of {step.load.sent:,}; {step.stale:,} nodes stale; "
                f"controller CPU {step.load.cpu_share('controller'):.0%} of a core",
                f"the heartbeat interval, {step.interval_s:g} s",
                round(p99 / step.interval_s, 3),
                f"p99 <= {AIM} x interval, no errors, no stale node",
                step.met,
                COMMAND,
            )
        )
    passed = [step.fleet for step in steps if step.met]
    largest = max(passed, default=0)
    table.append(
        Row(
            NAME,
            "largest fleet one controller served within the aim",
            f"{largest:,} nodes",
            f"the fleet aimed at, {TARGET:,} nodes",
            round(largest / TARGET, 3),
            f">= {TARGET:,} nodes",
            largest >= TARGET,
            COMMAND,
        )
    )
    return table


def findings(steps: list[Step]) -> list[str]:
    """Return what broke first and the next step, in words, from the measurements."""
    failed = next((step for step in steps if not step.met), None)
    if failed is None:
        return [f"Every fleet up to {steps[-1].fleet:,} nodes stayed within the aim."]
    before = [step for step in steps if step.met]
    served = max(before, key=lambda s: s.fleet) if before else None
    controller = failed.load.cpu_share("controller")
    redis_share = failed.load.cpu_share("redis")
    rate = failed.load.ok / failed.load.duration_s
    offered = failed.fleet / failed.interval_s
    limit = f"{served.fleet:,} nodes served within the aim" if served else "no fleet within"
    answered = f"p99 due -> answer {failed.delay.p99 * 1e3:,.0f} ms" if failed.delay else "none"
    notes = [
        f"Limit: {limit}; at {failed.fleet:,} nodes ({offered:,.0f} heartbeats/s offered) "
        f"the controller answered {rate:,.0f}/s, {answered}, errors "
        f"{failed.error_share:.1%}, {failed.stale:,} nodes stale at the end."
    ]
    if controller >= SATURATED:
        notes.append(
            f"What breaks first: the controller process's CPU ({controller:.0%} of one core; "
            f"Redis {redis_share:.0%}). The API runs in one Python process, so one core "
            "bounds it; heartbeats then queue, wait past the 5 s timeout, and nodes "
            "go stale although they are alive."
        )
        notes.append(
            "Next step: more controller processes (uvicorn workers, one per core; the "
            "registry is in Redis, so they share nothing else), then a longer heartbeat "
            "interval for large fleets (the TTL scales with it), then controllers on "
            "more hosts behind one address."
        )
    elif redis_share >= SATURATED:
        notes.append(
            f"What breaks first: Redis's CPU ({redis_share:.0%} of its one core; controller "
            f"{controller:.0%}). Next step: fewer Redis calls per heartbeat, then a Redis "
            "of the registry's own, apart from the broker."
        )
    else:
        notes.append(
            f"What breaks first: neither the controller ({controller:.0%} of a core) nor "
            f"Redis ({redis_share:.0%}) is saturated; the machine's two cores, shared with "
            "the load processes, are. Next step: the same test with the load on other hosts."
        )
    return notes


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--fleets", type=int, nargs="+", default=[1000, 2500, 5000, 10000])
    parser.add_argument("--seconds", type=float, default=60.0, help="per fleet")
    parser.add_argument("--interval", type=float, default=5.0, help="heartbeat interval, s")
    parser.add_argument("--processes", type=int, default=4, help="load processes")
    parser.add_argument("--connections", type=int, default=16, help="per load process")
    args = parser.parse_args()
    if args.quick:
        args.fleets, args.seconds, args.interval = [20, 40], 2.0, 1.0
    began = time.monotonic()
    steps = run(sorted(args.fleets), args.seconds, args.interval, args.processes, args.connections)
    notes = findings(steps)
    for note in notes:
        print(note)
    table = rows(steps, args.seconds)
    path = record(NAME, table, notes, results=args.results, seconds=time.monotonic() - began)
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
