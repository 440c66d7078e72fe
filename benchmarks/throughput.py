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

import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cluster import BenchCluster, bench_cluster  # noqa: E402
from benchmarks.common import Figure, Row, arguments, interleaved, record  # noqa: E402
from benchmarks.plain_worker import NOOP_TASK, QUEUE  # noqa: E402
from benchmarks.probes import Probe  # noqa: E402
from controller.celery_config import make_celery  # noqa: E402

NAME = "throughput"
COMMAND = ".venv/bin/python benchmarks/throughput.py"
AIM = 0.8


def batch(
    probe: Probe, submit: Callable[[], object], runs: int, submitters: int
) -> Callable[[], float]:
    """Return a subject that pushes ``runs`` runs through and returns runs per second."""

    def run() -> float:
        probe.clear()
        began = time.monotonic()
        with ThreadPoolExecutor(submitters) as pool:
            for _ in pool.map(lambda _: submit(), range(runs)):
                pass
        deadline = time.monotonic() + 120
        while probe.finished_count() < runs:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{probe.finished_count()} of {runs} runs ended in 120 s")
            time.sleep(0.01)
        return runs / (max(probe.finish_times()) - began)

    return run


def measure(lab: BenchCluster, runs: int, rounds: int, submitters: int) -> dict[str, Figure]:
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

    def celery() -> None:
        noop.apply_async(queue=QUEUE)

    probe = lab.probe
    subjects = {
        "api": batch(probe, api, runs, submitters),
        "celery": batch(probe, celery, runs, submitters),
    }
    for submit in (api, celery):  # warm up connections and workers
        batch(probe, submit, 20, 1)()
    return interleaved(subjects, rounds)


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
    for count in [1] if args.quick else args.workers:
        with bench_cluster() as lab:
            for index in range(count):
                lab.start_worker(f"bench-micro-{index + 1}", "micro")
                lab.start_plain_worker(f"plain-{index + 1}")
            found = measure(lab, runs, rounds, args.submitters)
        api, celery = found["api"], found["celery"]
        ratio = api.median / celery.median
        print(f"{count} workers: api {api.show('runs/s')}, celery {celery.show('runs/s')}")
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
                COMMAND,
            )
        )
    path = record(NAME, table, results=args.results, seconds=time.monotonic() - began)
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
