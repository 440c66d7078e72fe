"""Dispatch decision time as the fleet grows, against Celery's own router.

Registers fleets of 100, 1,000 and 10,000 nodes (each in its own Redis
database of one redis-server: micro, small, medium, large and GPU nodes
holding the models their tier can, a few draining, stale or unhealthy), then
times ``Dispatcher.decide`` on the same seven requests (one per queue, the
GPU one with its memory check) against Celery's router
(``celery.app.routes.Router.route`` with a route that maps a run's model to
its queue), interleaved, one batch of the seven per round. Also times the
explain path (every queue's check, counting every node) at the largest fleet.

    .venv/bin/python benchmarks/dispatch.py [--fleets 100 1000 10000] [--rounds 60]
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import (  # noqa: E402
    Figure,
    Row,
    arguments,
    command,
    interleaved,
    record,
    timed,
)
from controller.catalog import Catalog  # noqa: E402
from controller.celery_config import RUN_TASK, make_celery  # noqa: E402
from controller.dispatcher import Dispatcher  # noqa: E402
from controller.registry import NodeCapabilities, Registry  # noqa: E402
from controller.tiers import tier_model  # noqa: E402
from tests.services import redis_server  # noqa: E402

NAME = "dispatch"
GROWTH_AIM = 2.0
SHA = "0" * 64

# name -> (RAM it needs, GPU memory it needs; 0 for a CPU model)
MODELS = {
    "gemma3-270m": (0.6, 0.0),
    "qwen-7b": (5.0, 0.0),
    "llama-13b": (10.0, 0.0),
    "mixtral-30b": (20.0, 0.0),
    "llama-70b": (40.0, 40.0),
}
# (tier, RAM, GPU memory)
MICRO, SMALL, MEDIUM = ("micro", 3.8, 0.0), ("small", 7.6, 0.0), ("medium", 15.5, 0.0)
LARGE, GPU = ("large", 31.2, 0.0), ("large", 62.8, 80.0)
# Every 20 nodes: 8 micro, 6 small, 3 medium, 2 large and 1 GPU node.
PATTERN = [GPU, MICRO, SMALL, MEDIUM, LARGE, MICRO, SMALL, MICRO, SMALL, MEDIUM]
PATTERN += [MICRO, SMALL, MICRO, LARGE, MICRO, SMALL, MEDIUM, MICRO, SMALL, MICRO]
# The seven requests: (model, RAM, GPU); one per queue, the GPU one last.
REQUESTS: list[tuple[str | None, float, bool]] = [
    ("gemma3-270m", 0.0, False),
    ("qwen-7b", 0.0, False),
    ("llama-13b", 0.0, False),
    ("mixtral-30b", 0.0, False),
    (None, 20.0, False),
    (None, 0.0, False),
    ("llama-70b", 0.0, False),
]


def catalog() -> Catalog:
    return Catalog.from_mapping(
        {
            name: {
                "file": f"{name}.gguf",
                "url": f"http://mirror.invalid/{name}.gguf",
                "sha256": SHA,
                "size_bytes": 1,
                "ram_gb": ram,
                **({"gpu": True, "gpu_memory_gb": gpu} if gpu else {}),
            }
            for name, (ram, gpu) in MODELS.items()
        }
    )


def register_fleet(registry: Registry, count: int, now: float, seed: int = 7) -> None:
    """Register ``count`` nodes; beyond the first 20, about 5% draining, 3% stale
    and 2% unhealthy."""
    rng = random.Random(seed)
    tiers = tier_model()
    for index in range(count):
        tier, ram, gpu_memory = PATTERN[index % len(PATTERN)]
        node_id = f"node-{index:05d}"
        models = {
            name: SHA
            for name, (need, gpu_need) in MODELS.items()
            if need <= ram * 0.8 and gpu_need <= gpu_memory
        }
        registry.register(
            NodeCapabilities(
                node_id=node_id,
                tier=tier,
                queues=tiers.node_queues(tier, gpu=gpu_memory > 0),
                ram_gb=ram,
                cpus=4,
                arch="x86_64",
                gpu=gpu_memory > 0,
                gpu_memory_gb=gpu_memory,
                models=models,
            ),
            now=now,
        )
        draw = rng.random() if index >= len(PATTERN) else 1.0
        if draw < 0.05:
            registry.drain(node_id, "bench", "maintenance", now=now)
        elif draw < 0.08:
            registry.heartbeat(node_id, now=now - 20)
        elif draw < 0.10:
            registry.heartbeat(node_id, problems=["disk full"], now=now)


def celery_router() -> Callable[[tuple[str | None, float, bool]], Any]:
    """Return Celery's router for the run task, with routes by model to queue."""
    tiers = tier_model()
    by_model = {name: tiers.queue_for(ram, gpu > 0) for name, (ram, gpu) in MODELS.items()}

    def route_by_model(
        name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any
    ) -> dict[str, str] | None:
        model, ram_gb = args[0].get("model"), args[0].get("ram_gb", 0.0)
        if model:
            return {"queue": by_model[model]}
        return {"queue": tiers.queue_for(ram_gb) if ram_gb > 0 else tiers.any_queue}

    app = make_celery("redis://127.0.0.1:1/0")
    app.conf.task_routes = (route_by_model,)
    router = app.amqp.router

    def route(request: tuple[str | None, float, bool]) -> Any:
        model, ram, _ = request
        return router.route({}, RUN_TASK, args=[{"model": model, "ram_gb": ram}])

    return route


def batch(decide: Callable[[tuple[str | None, float, bool]], Any]) -> Callable[[], float]:
    """Return a subject that decides the seven requests and returns the mean time."""
    run = timed(lambda: [decide(request) for request in REQUESTS])
    return lambda: run() / len(REQUESTS)


def dispatchers(port: int, fleets: list[int], now: float) -> dict[int, Dispatcher]:
    found = {}
    for db, count in enumerate(fleets):
        registry = Registry(redis.Redis(port=port, db=db))
        registry.redis.flushdb()
        register_fleet(registry, count, now)
        found[count] = Dispatcher(registry, catalog())
    return found


def check_decisions(dispatcher: Dispatcher, route: Callable[..., Any], now: float) -> None:
    """Both sides must send every request to the same queue, or the timing means nothing."""
    for request in REQUESTS:
        decided = dispatcher.decide(*request, now=now).queue
        routed = route(request)["queue"].name
        if decided != routed:
            raise SystemExit(f"{request}: dispatcher sent it to {decided}, the router to {routed}")


def measure(fleets: list[int], rounds: int, port: int) -> tuple[dict[str, Figure], int]:
    now = time.time()
    by_size = dispatchers(port, fleets, now)
    route = celery_router()
    for dispatcher in by_size.values():
        check_decisions(dispatcher, route, now)
    largest = max(fleets)
    subjects = {"router": batch(route)}
    for count, dispatcher in by_size.items():
        subjects[f"decide-{count}"] = batch(
            lambda r, d=dispatcher: d.decide(*r, now=now)  # type: ignore[misc]
        )
    explain = by_size[largest]
    subjects[f"explain-{largest}"] = batch(lambda r: explain.decide(*r, explain=True, now=now))
    return interleaved(subjects, rounds), largest


def rows(found: dict[str, Figure], fleets: list[int], largest: int) -> list[Row]:
    router = found["router"]
    table = []
    for count in fleets:
        decide = found[f"decide-{count}"]
        table.append(
            Row(
                NAME,
                f"one decision, {count:,} registered nodes (mean of 7 requests)",
                f"Dispatcher.decide: {decide.show('us', 1e6)}",
                f"Celery Router.route, routes by model: {router.show('us', 1e6)}",
                round(decide.median / router.median, 1),
                "none (the router reads no live state: this is what liveness costs)",
                None,
                command(),
            )
        )
    small, large = found[f"decide-{min(fleets)}"], found[f"decide-{largest}"]
    growth = large.median / small.median
    table.append(
        Row(
            NAME,
            f"growth of a decision from {min(fleets):,} to {largest:,} nodes",
            f"Dispatcher.decide, {largest:,} nodes: {large.show('us', 1e6)}",
            f"Dispatcher.decide, {min(fleets):,} nodes: {small.show('us', 1e6)}",
            round(growth, 2),
            f"<= {GROWTH_AIM}x (a decision must not grow with the fleet)",
            growth <= GROWTH_AIM,
            command(),
        )
    )
    explain = found[f"explain-{largest}"]
    table.append(
        Row(
            NAME,
            f"explain (every queue, every node counted), {largest:,} nodes",
            f"Dispatcher.decide(explain=True): {explain.show('us', 1e6)}",
            f"Dispatcher.decide, {largest:,} nodes: {large.show('us', 1e6)}",
            round(explain.median / large.median, 1),
            "none (explain counts every node by design)",
            None,
            command(),
        )
    )
    return table


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--fleets", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    fleets = [20, 60] if args.quick else sorted(args.fleets)
    began = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="bench-") as work,
        redis_server(Path(work) / "redis") as server,
    ):
        found, largest = measure(fleets, 3 if args.quick else args.rounds, server.port)
    for name, figure in found.items():
        print(f"{name:14} {figure.show('us', 1e6)}")
    table = rows(found, fleets, largest)
    for row in table:
        print(f"{row.what}: ratio {row.ratio} (aim {row.aim})")
    path = record(NAME, table, results=args.results, seconds=time.monotonic() - began)
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
