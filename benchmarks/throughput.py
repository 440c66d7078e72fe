"""Throughput of no-op runs through the controller's API, against plain Celery.

With 1 and then 4 workers of each kind running (the project's worker and a
plain Celery worker with the same settings, see benchmarks.plain_worker),
each round submits a batch of no-op runs through ``POST /v1/runs`` and a
batch of no-op tasks with ``apply_async``, alternately, from the same number
of submitting threads, and takes the rate from the first submission to the
last run's end in a worker (Celery's ``task_postrun``, see benchmarks.probes).

    .venv/bin/python benchmarks/throughput.py [--runs 300] [--rounds 3] [--submitters 2]
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cluster import BenchCluster, bench_cluster  # noqa: E402
from benchmarks.common import Figure, Row, arguments, command, cpu_seconds, record  # noqa: E402
from benchmarks.plain_worker import NOOP_TASK, QUEUE  # noqa: E402
from benchmarks.probes import Probe  # noqa: E402
from controller.celery_config import make_celery  # noqa: E402

NAME = "throughput"
AIM = 0.8


@dataclass
class Kind:
    """One way of pushing runs through, and what each batch measured."""

    submit: Callable[[], object]
    rates: list[float] = field(default_factory=list)
    cpu_ms: dict[str, list[float]] = field(default_factory=dict)  # per run, by process


def batch(
    probe: Probe,
    kind: Kind,
    runs: int,
    submitters: int,
    processes: dict[str, list[psutil.Process]],
) -> None:
    """Push ``runs`` runs through; record the rate and the CPU each process
    group spent per run (the client is this process, less its children)."""
    probe.clear()
    client = psutil.Process()
    before = {name: cpu_seconds(group) for name, group in processes.items()}
    before["client"] = cpu_seconds([client], children=False)
    began = time.monotonic()
    with ThreadPoolExecutor(submitters) as pool:
        for _ in pool.map(lambda _: kind.submit(), range(runs)):
            pass
    deadline = time.monotonic() + 120
    while probe.finished_count() < runs:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{probe.finished_count()} of {runs} runs ended in 120 s")
        time.sleep(0.01)
    kind.rates.append(runs / (max(probe.finish_times()) - began))
    after = {name: cpu_seconds(group) for name, group in processes.items()}
    after["client"] = cpu_seconds([client], children=False)
    for name, spent in after.items():
        kind.cpu_ms.setdefault(name, []).append((spent - before[name]) / runs * 1e3)


def measure(lab: BenchCluster, runs: int, rounds: int, submitters: int) -> dict[str, Kind]:
    local = threading.local()

    def api() -> None:
        # A client per submitting thread, as each harness has its own.
        if not hasattr(local, "client"):
            local.client = lab.client()
        local.client.submit(runtime="noop")

    reference = make_celery(lab.url(1))

    @reference.task(name=NOOP_TASK)  # type: ignore[untyped-decorator]
    def noop() -> None:
        """The plain worker's task, declared here to be sent."""

    kinds = {"api": Kind(api), "celery": Kind(lambda: noop.apply_async(queue=QUEUE))}
    processes = {
        name: [
            psutil.Process(service.process.pid)
            for service in lab.workers.values()
            if service.name.startswith(prefix)
        ]
        for name, prefix in (("workers", "bench-"), ("plain workers", "plain-"))
    }
    processes["controller"] = [psutil.Process(lab.controller.process.pid)]
    processes["redis"] = [psutil.Process(lab.redis.process.pid)]
    for kind in kinds.values():  # warm up connections and workers
        batch(lab.probe, Kind(kind.submit), 20, 1, processes)
    for index in range(rounds):
        order = list(kinds) if index % 2 == 0 else list(kinds)[::-1]
        for name in order:
            batch(lab.probe, kinds[name], runs, submitters, processes)
    return kinds


def cpu_note(count: int, kinds: dict[str, Kind]) -> str:
    """Say where the CPU of a run went, each way, in medians over the batches."""

    def spent(kind: Kind) -> str:
        shares = {name: statistics.median(ms) for name, ms in kind.cpu_ms.items()}
        parts = [f"{name} {ms:.2f}" for name, ms in shares.items() if ms >= 0.05]
        return f"{sum(shares.values()):.1f} ms (" + ", ".join(parts) + ")"

    return (
        f"{count} worker{'s' if count > 1 else ''}: CPU per run, through the API "
        f"{spent(kinds['api'])}; plain Celery {spent(kinds['celery'])}. Everything "
        f"shares the machine's {os.cpu_count()} cores, so the CPU a run costs bounds "
        "the rate."
    )


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--runs", type=int, default=300, help="runs per batch")
    parser.add_argument("--rounds", type=int, default=3, help="batches of each kind")
    parser.add_argument("--submitters", type=int, default=2, help="submitting threads")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    runs, rounds = (10, 2) if args.quick else (args.runs, args.rounds)
    began = time.monotonic()
    table = []
    notes: list[str] = []
    for count in [1] if args.quick else args.workers:
        with bench_cluster() as lab:
            for index in range(count):
                lab.start_worker(f"bench-micro-{index + 1}", "micro")
                lab.start_plain_worker(f"plain-{index + 1}")
            kinds = measure(lab, runs, rounds, args.submitters)
        api, celery = Figure.of(kinds["api"].rates), Figure.of(kinds["celery"].rates)
        notes.append(cpu_note(count, kinds))
        print(notes[-1])
        ratio = api.median / celery.median
        print(f"{count} worker(s): api {api.show('runs/s')}, celery {celery.show('runs/s')}")
        table.append(
            Row(
                NAME,
                f"no-op runs through, {count} worker{'s' if count > 1 else ''}, "
                f"batches of {runs} from {args.submitters} submitting threads",
                f"POST /v1/runs: {api.show('runs/s')}",
                f"plain Celery apply_async: {celery.show('runs/s')}",
                round(ratio, 2),
                f">= {AIM}x",
                ratio >= AIM,
                command(),
            )
        )
    path = record(NAME, table, notes, results=args.results, seconds=time.monotonic() - began)
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
