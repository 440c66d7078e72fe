"""What telemetry costs a run: llama.cpp generation with the sampler off and on.

Runs the same greedy generation through ``execute_run`` with telemetry off
and on at each interval, interleaved (each repetition runs every setting,
starting from a different one), after one warm-up run that loads the model.
Prints, per setting: the decode rate in tokens/s (median, min-max), its
ratio to the run without telemetry of the same repetition (median, min-max)
and the sampler thread's CPU time as a share of the run's wall time.

    .venv/bin/python benchmarks/telemetry_overhead.py [--tokens 64] [--repetitions 7]

The model defaults to Gemma 3 270M, assembled into the cache as the tests do.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Write a long story about a lighthouse keeper and a storm."


@dataclass
class Setting:
    """One way of running: telemetry off (interval None) or on at an interval."""

    interval_s: float | None
    tokens_per_s: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    sampler_shares: list[float] = field(default_factory=list)
    completion_tokens: list[int] = field(default_factory=list)

    @property
    def label(self) -> str:
        return "off" if self.interval_s is None else f"on, {self.interval_s:g} s"


@dataclass(frozen=True)
class Workload:
    model: Path
    tokens: int
    threads: int

    def spec(self, interval_s: float | None, run: int) -> dict[str, Any]:
        telemetry = {"enabled": interval_s is not None, "interval_s": interval_s or 0.5}
        return {
            "run_id": f"bench-{run}",
            "runtime": "llama_cpp",
            "model_file": self.model.name,
            "params": {"prompt": PROMPT, "max_tokens": self.tokens, "n_threads": self.threads},
            "telemetry": telemetry,
        }


def _measure(settings: Sequence[Setting], workload: Workload, repetitions: int) -> None:
    from worker.execution import execute_run

    models_dir = workload.model.parent
    execute_run(workload.spec(None, 0), models_dir, "bench")
    for repetition in range(repetitions):
        start = repetition % len(settings)
        rates: dict[str, float] = {}
        for setting in [*settings[start:], *settings[:start]]:
            result = execute_run(
                workload.spec(setting.interval_s, repetition), models_dir, "bench"
            )
            if result["status"] != "succeeded" or result["timings"]["tokens_per_s"] is None:
                raise SystemExit(f"run failed: {result['error']}")
            rates[setting.label] = result["timings"]["tokens_per_s"]
            setting.tokens_per_s.append(rates[setting.label])
            setting.completion_tokens.append(result["tokens"]["completion"])
            summary = result["telemetry"]["summary"]
            if summary is not None:
                setting.sampler_shares.append(summary["sampler_cpu_share"])
        for setting in settings:
            setting.ratios.append(rates[setting.label] / rates["off"])


def _spread(values: Sequence[float], digits: int) -> str:
    if not values:
        return "-"
    median = statistics.median(values)
    return f"{median:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def _print_table(settings: Sequence[Setting]) -> None:
    header = ("telemetry", "tokens/s", "ratio to off", "sampler CPU share %", "tokens")
    rows = [
        (
            setting.label,
            _spread(setting.tokens_per_s, 1),
            _spread(setting.ratios, 3),
            _spread([share * 100 for share in setting.sampler_shares], 2),
            _spread(setting.completion_tokens, 0),
        )
        for setting in settings
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * width for width in widths), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def main(argv: Sequence[str] | None = None) -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="GGUF file (default: Gemma 3 270M)")
    parser.add_argument("--tokens", type=int, default=64, help="tokens per run")
    parser.add_argument("--repetitions", type=int, default=7, help="runs of each setting")
    parser.add_argument("--threads", type=int, help="llama.cpp threads (default: every CPU)")
    parser.add_argument(
        "--intervals", type=float, nargs="+", default=[0.5, 0.1], help="sampling intervals, s"
    )
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from tests.models import gemma_model
    from worker.runtimes.llama_cpp import available_cpus

    workload = Workload(
        (args.model or gemma_model()).resolve(), args.tokens, args.threads or available_cpus()
    )
    settings = [Setting(None), *(Setting(interval) for interval in args.intervals)]
    print(
        f"model {workload.model.name}, {workload.tokens} tokens greedy, {args.repetitions} "
        f"repetitions interleaved, {available_cpus()} CPUs, n_threads {workload.threads}"
    )
    _measure(settings, workload, args.repetitions)
    _print_table(settings)


if __name__ == "__main__":
    main()
