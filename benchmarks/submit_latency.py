"""Submit to run start: the controller's API against plain Celery and one Redis hop.

One project worker (micro tier) and one plain Celery worker (the same
Celery settings: prefork, concurrency 1, late acks, prefetch off) wait idle;
each round, in rotating order, the benchmark

- posts a no-op run to ``POST /v1/runs`` with the researchers' client
  (``controller.submit.Client``): dispatch, run record, publish;
- calls ``apply_async`` on a no-op task of the plain worker;
- pushes one item to a list that a redis-py process pops (BRPOP): the floor;

and takes the time from just before the call to the task's start in the
worker's pool process (Celery's ``task_prerun``, see benchmarks.probes), on
the machine's monotonic clock, waiting for each run to end before the next.

    .venv/bin/python benchmarks/submit_latency.py [--samples 500]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cluster import BenchCluster, bench_cluster  # noqa: E402
from benchmarks.common import Latency, Row, arguments, command, record  # noqa: E402
from benchmarks.plain_worker import NOOP_TASK, QUEUE  # noqa: E402
from controller.celery_config import make_celery  # noqa: E402

NAME = "submit_latency"
AIM_P50 = 1.5
AIM_P99 = 3.0


def subjects(lab: BenchCluster, parts: dict[str, list[float]]) -> dict[str, Callable[[], float]]:
    """Return the three ways to start a run, each returning its submit-to-start
    time, and the HTTP floor (a GET of /healthz); the call's own time goes to
    ``parts``."""
    probe = lab.probe
    client = lab.client()
    reference = make_celery(lab.url(1))

    @reference.task(name=NOOP_TASK)  # type: ignore[untyped-decorator]
    def noop() -> None:
        """The plain worker's task, declared here to be sent."""

    def through_api() -> float:
        sent = time.monotonic()
        run_id = client.submit(runtime="noop").run_id
        answered = time.monotonic()
        task_id, started = probe.started()
        probe.finished()
        if task_id != run_id:
            raise RuntimeError(f"expected run {run_id} to start, saw {task_id}")
        parts.setdefault("api call", []).append(answered - sent)
        parts.setdefault("api after", []).append(started - answered)
        return started - sent

    def plain_celery() -> float:
        sent = time.monotonic()
        result = noop.apply_async(queue=QUEUE)
        returned = time.monotonic()
        task_id, started = probe.started()
        probe.finished()
        if task_id != result.id:
            raise RuntimeError(f"expected task {result.id} to start, saw {task_id}")
        parts.setdefault("celery call", []).append(returned - sent)
        parts.setdefault("celery after", []).append(started - returned)
        return started - sent

    def healthz() -> float:
        sent = time.monotonic()
        client.request("GET", "/healthz")
        return time.monotonic() - sent

    return {
        "api": through_api,
        "celery": plain_celery,
        "redis": probe.echo,
        "healthz": healthz,
    }


def measure(lab: BenchCluster, samples: int, warmup: int = 5) -> dict[str, Latency]:
    """Run every subject ``samples`` times, rotating which goes first; return
    their latencies and those of the calls alone."""
    parts: dict[str, list[float]] = {}
    ways = subjects(lab, parts)
    names = list(ways)
    for _ in range(warmup):
        for way in ways.values():
            way()
    parts.clear()
    timings: dict[str, list[float]] = {name: [] for name in names}
    for index in range(samples):
        start = index % len(names)
        for name in names[start:] + names[:start]:
            timings[name].append(ways[name]())
    timings.update(parts)
    return {name: Latency.of(values) for name, values in timings.items()}


def rows(found: dict[str, Latency]) -> list[Row]:
    api, celery, floor = found["api"], found["celery"], found["redis"]
    p50, p99 = api.p50 / celery.p50, api.p99 / celery.p99
    what = "submit -> run start, idle worker, no-op run"
    return [
        Row(
            NAME,
            f"{what}, median",
            f"POST /v1/runs: {api.show()}",
            f"plain Celery apply_async: {celery.show()}",
            round(p50, 2),
            f"p50 <= {AIM_P50}x",
            p50 <= AIM_P50,
            command(),
        ),
        Row(
            NAME,
            f"{what}, 99th percentile",
            f"POST /v1/runs: p99 {api.p99 * 1e3:.3g} ms",
            f"plain Celery apply_async: p99 {celery.p99 * 1e3:.3g} ms",
            round(p99, 2),
            f"p99 <= {AIM_P99}x",
            p99 <= AIM_P99,
            command(),
        ),
        Row(
            NAME,
            "plain Celery over the floor: apply_async -> task start, median",
            f"plain Celery apply_async: {celery.show()}",
            f"redis-py LPUSH -> BRPOP, one hop: {floor.show()}",
            round(celery.p50 / floor.p50, 2),
            "none (context: what Celery itself costs)",
            None,
            command(),
        ),
    ]


def notes(found: dict[str, Latency]) -> list[str]:
    """Say where each way's time goes, in medians from the same rounds."""

    def ms(name: str) -> str:
        return f"{found[name].p50 * 1e3:.2f} ms"

    return [
        f"Where the time goes (p50): through the API, the POST answers in {ms('api call')} "
        f"(a GET of /healthz, the HTTP floor of the same client and server, takes "
        f"{ms('healthz')}), and the run starts {ms('api after')} after the answer (it is "
        f"published before the answer is sent); plain Celery's apply_async returns in "
        f"{ms('celery call')} and the task starts {ms('celery after')} later."
    ]


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--samples", type=int, default=500, help="runs of each way")
    args = parser.parse_args()
    began = time.monotonic()
    with bench_cluster() as lab:
        lab.start_worker("bench-micro-1", "micro")
        lab.start_plain_worker("plain-1")
        lab.start_echo()
        lab.probe.clear()
        found = measure(lab, 10 if args.quick else args.samples, warmup=2 if args.quick else 20)
    for name, latency in found.items():
        print(f"{name:12} {latency.show()}")
    table = rows(found)
    found_notes = notes(found)
    print(found_notes[0])
    for row in table:
        print(f"{row.what}: ratio {row.ratio} (aim {row.aim}): {'met' if row.met else 'not met'}")
    path = record(NAME, table, found_notes, results=args.results, seconds=time.monotonic() - began)
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
