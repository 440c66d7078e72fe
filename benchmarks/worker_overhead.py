"""What a run through the cluster costs generation: a real worker against in-process.

Submits a greedy Gemma 3 270M generation through the controller's API to a
real worker (telemetry on, at the default 0.5 s interval) and runs the same
generation with the same params in this process (``worker.runtimes``, the
llama_cpp runtime, no telemetry), alternately, after one warm-up of each
that loads the model. Compares the decode rate (tokens/s, as the runtime
measures it on both sides), round by round, and reports the telemetry
sampler's CPU share from the run's own telemetry summary.

    .venv/bin/python benchmarks/worker_overhead.py [--tokens 64] [--rounds 9]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cluster import BenchCluster, bench_cluster, gemma_models_dir  # noqa: E402
from benchmarks.common import Figure, Row, arguments, command, record  # noqa: E402
from tests.models import GEMMA_CATALOG_FILE, GEMMA_MODEL_NAME  # noqa: E402

NAME = "worker_overhead"
AIM = 0.95
PROMPT = "Write a long story about a lighthouse keeper and a storm."


def through_worker(lab: BenchCluster, tokens: int, shares: list[float]) -> float:
    """Run the generation through the API; return its tokens/s."""
    client = lab.client()
    run_id = client.submit(GEMMA_MODEL_NAME, PROMPT, max_tokens=tokens).run_id
    result = client.result(run_id, timeout_s=300)
    summary = result["telemetry"]["summary"]
    if summary is None:
        raise RuntimeError(f"run {run_id} came back without telemetry")
    shares.append(summary["sampler_cpu_share"])
    return float(result["timings"]["tokens_per_s"])


def in_process(model: Path, tokens: int) -> float:
    """Run the same generation in this process; return its tokens/s."""
    from worker.runtimes import get_runtime

    params: dict[str, Any] = {
        "prompts": [PROMPT],
        "max_tokens": tokens,
        "temperature": 0.0,
        "seed": 0,
    }
    output = get_runtime("llama_cpp").run(params, model)
    if output.tokens_per_s is None:
        raise RuntimeError("the in-process run measured no decode rate")
    return float(output.tokens_per_s)


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--tokens", type=int, default=64, help="tokens per run")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    tokens, rounds = (8, 2) if args.quick else (args.tokens, args.rounds)
    began = time.monotonic()
    rates: dict[str, list[float]] = {"worker": [], "direct": []}
    shares: list[float] = []
    with bench_cluster() as lab:
        lab.start_worker("bench-micro-1", "micro", models=True)
        model = gemma_models_dir(lab.directory / "models") / GEMMA_CATALOG_FILE
        ways: dict[str, Callable[[], float]] = {
            "worker": lambda: through_worker(lab, tokens, shares),
            "direct": lambda: in_process(model, tokens),
        }
        for way in ways.values():
            way()
        shares.clear()
        for index in range(rounds):
            order = list(ways) if index % 2 == 0 else list(ways)[::-1]
            for name in order:
                rates[name].append(ways[name]())
    worker, direct = Figure.of(rates["worker"]), Figure.of(rates["direct"])
    sampler = Figure.of(shares)
    # Each round's two runs are next to each other in time, so their ratio
    # is spared the machine's slower swings; the row gives the median ratio.
    paired = Figure.of([w / d for w, d in zip(rates["worker"], rates["direct"], strict=True)])
    ratio = paired.median
    print(f"worker {worker.show('tokens/s')}, direct {direct.show('tokens/s')}")
    print(f"ratio of each round's pair {paired.show('')}")
    print(f"sampler CPU share {sampler.show('%', 100)}")
    row = Row(
        NAME,
        f"Gemma 3 270M, {tokens} tokens greedy, decode rate (ratio: median of each "
        f"round's pair, IQR {paired.p25:.3f}-{paired.p75:.3f})",
        f"through the API and a worker, telemetry on: {worker.show('tokens/s')}; "
        f"sampler CPU share {sampler.show('%', 100)}",
        f"llama_cpp runtime in process, no telemetry: {direct.show('tokens/s')}",
        round(ratio, 3),
        f">= {AIM}x",
        ratio >= AIM,
        command(),
    )
    path = record(NAME, [row], results=args.results, seconds=time.monotonic() - began)
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
