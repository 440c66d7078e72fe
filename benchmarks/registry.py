"""Heartbeats one controller process sustains, against raw Redis doing the same writes.

Registers 1,000 simulated nodes, then, alternately for a few rounds, floods
the controller's heartbeat endpoint from load processes (several keep-alive
connections each, see benchmarks.beats) and runs the same writes (the
registry's heartbeat script) straight against Redis from the same number of
processes. From the sustained rate it derives the largest fleet that leaves
50% headroom at the default heartbeat interval (5 s).

The load processes share the machine's cores with the controller and Redis,
so the rates are a floor of what a controller host of the same cores would
sustain with its workers elsewhere.

    .venv/bin/python benchmarks/registry.py [--processes 2] [--connections 8] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cluster import BenchCluster, bench_cluster  # noqa: E402
from benchmarks.common import Figure, Row, arguments, command, number, record  # noqa: E402
from benchmarks.load import Load, register_simulated, run_load  # noqa: E402
from controller.registry import Registry  # noqa: E402

NAME = "registry"
INTERVAL_S = 5.0
HEADROOM = 0.5
FLEET_AIM = 10_000
NODES = 1000


def flood(lab: BenchCluster, args: argparse.Namespace, seconds: float) -> Load:
    return run_load(
        "flood",
        lab.api_url,
        NODES,
        args.processes,
        seconds,
        watch={"controller": lab.controller.process.pid, "redis": lab.redis.process.pid},
        secret_file=lab.files.directory / "worker.secret",
        connections=args.connections,
    )


def raw(lab: BenchCluster, args: argparse.Namespace, seconds: float) -> Load:
    return run_load(
        "raw",
        lab.url(0),
        NODES,
        args.processes,
        seconds,
        watch={"redis": lab.redis.process.pid},
    )


def rows(api: list[Load], direct: list[Load], args: argparse.Namespace) -> list[Row]:
    api_rate = Figure.of([load.rate for load in api])
    raw_rate = Figure.of([load.rate for load in direct])
    ratio = api_rate.median / raw_rate.median
    fleet = api_rate.median * INTERVAL_S * HEADROOM
    raw_fleet = raw_rate.median * INTERVAL_S * HEADROOM
    errors = sum(load.failed for load in api)
    return [
        Row(
            NAME,
            f"heartbeats/s, {controllers(args.api_workers)}, {args.processes} load "
            f"processes x {args.connections} connections",
            f"POST /v1/nodes/{{id}}/heartbeat: {api_rate.show('/s')}, {errors} errors",
            f"registry heartbeat script via redis-py: {raw_rate.show('/s')}",
            round(ratio, 3),
            "none (context: what HTTP, auth and validation cost)",
            None,
            command(),
        ),
        Row(
            NAME,
            f"largest fleet with {HEADROOM:.0%} headroom at a {INTERVAL_S:g} s interval",
            f"through the API: {number(fleet)} nodes",
            f"raw Redis writes: {number(raw_fleet)} nodes",
            round(fleet / raw_fleet, 3),
            f">= {FLEET_AIM:,} nodes",
            fleet >= FLEET_AIM,
            command(),
        ),
    ]


def controllers(count: int) -> str:
    return "one controller process" if count == 1 else f"{count} controller processes"


def cpu_note(api: list[Load]) -> str:
    """Say where the CPU went during the API floods (medians over the rounds)."""

    def median(values: list[float]) -> float:
        return statistics.median(values)

    per_beat = median([load.cpu_s["controller"] / max(1, load.ok) * 1e3 for load in api])
    return (
        f"During the API floods (medians) the controller used "
        f"{median([load.cpu_share('controller') for load in api]):.0%} of a core, "
        f"{per_beat:.2f} ms of CPU per heartbeat; the load processes "
        f"{median([load.cpu_share('load') for load in api]):.0%} and Redis "
        f"{median([load.cpu_share('redis') for load in api]):.0%}, on the same "
        f"{os.cpu_count()} cores, which were "
        f"{median([load.machine_busy for load in api]):.0%} busy in all (other work "
        "shares this machine)."
    )


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--processes", type=int, default=2, help="load processes")
    parser.add_argument("--connections", type=int, default=8, help="per load process")
    parser.add_argument("--seconds", type=float, default=5.0, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--api-workers", type=int, default=1, help="controller API processes (default: 1)"
    )
    args = parser.parse_args()
    seconds, rounds = (1.0, 2) if args.quick else (args.seconds, args.rounds)
    began = time.monotonic()
    api: list[Load] = []
    direct: list[Load] = []
    notes = []
    with bench_cluster(RESEARCH_API_WORKERS=str(args.api_workers)) as lab:
        register_simulated(Registry(lab.redis.client()), NODES)
        for index in range(rounds):
            order = [("api", flood), ("raw", raw)]
            for name, way in order if index % 2 == 0 else order[::-1]:
                load = way(lab, args, seconds)
                (api if name == "api" else direct).append(load)
                print(
                    f"{name}: {load.rate:.0f}/s, errors {load.errors}, CPU "
                    + ", ".join(f"{k} {load.cpu_share(k):.0%}" for k in load.cpu_s)
                )
    notes.append(cpu_note(api))
    table = rows(api, direct, args)
    for row in table:
        print(f"{row.what}: {row.measured} / {row.reference}: ratio {row.ratio}")
    path = record(NAME, table, notes, results=args.results, seconds=time.monotonic() - began)
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
