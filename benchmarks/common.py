"""Shared parts of the benchmarks: timing side by side, and recording rows.

Every benchmark measures its subject and a reference in the same run, with
repetitions interleaved so that noise on a shared machine hits both alike,
and records one row per comparison in benchmarks/results/<name>.json.
benchmarks/report.py turns all rows into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Figure:
    """A median with its spread (interquartile range) over repetitions."""

    median: float
    p25: float
    p75: float
    samples: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Figure:
        if len(values) < 2:
            raise ValueError("a figure needs at least two repetitions")
        q = statistics.quantiles(values, n=4, method="inclusive")
        return cls(statistics.median(values), q[0], q[2], len(values))

    def show(self, unit: str, scale: float = 1.0) -> str:
        return (
            f"{number(self.median * scale)} {unit} "
            f"(IQR {number(self.p25 * scale)}-{number(self.p75 * scale)}, n={self.samples})"
        )


def number(value: float) -> str:
    """Return ``value`` with three significant digits, never in exponent form."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) >= 0.001 else f"{value:.2g}"


def percentile(values: Sequence[float], q: float) -> float:
    """Return the ``q``-th percentile (0-100) of ``values``, nearest rank."""
    if not values:
        raise ValueError("a percentile needs at least one value")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Latency:
    """The median and 99th percentile of one-off timings, with the range."""

    p50: float
    p99: float
    low: float
    high: float
    samples: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Latency:
        if len(values) < 2:
            raise ValueError("a latency needs at least two samples")
        return cls(
            statistics.median(values),
            percentile(values, 99),
            min(values),
            max(values),
            len(values),
        )

    def show(self, unit: str = "ms", scale: float = 1e3) -> str:
        return (
            f"p50 {number(self.p50 * scale)} {unit}, p99 {number(self.p99 * scale)} {unit} "
            f"(min-max {number(self.low * scale)}-{number(self.high * scale)}, "
            f"n={self.samples})"
        )


@dataclass(frozen=True)
class Row:
    """One line of docs/benchmarks.md: a figure next to its reference."""

    benchmark: str
    what: str
    measured: str
    reference: str
    ratio: float
    aim: str
    met: bool | None
    command: str


def interleaved(subjects: dict[str, Callable[[], float]], rounds: int) -> dict[str, Figure]:
    """Run each subject once per round, alternating, and return their figures.

    A subject returns the seconds it measured (or another quantity).
    """
    samples: dict[str, list[float]] = {name: [] for name in subjects}
    for _ in range(rounds):
        for name, subject in subjects.items():
            samples[name].append(subject())
    return {name: Figure.of(values) for name, values in samples.items()}


def timed(function: Callable[[], object]) -> Callable[[], float]:
    """Wrap a function so that calling it returns its wall time in seconds."""

    def run() -> float:
        start = time.perf_counter()
        function()
        return time.perf_counter() - start

    return run


def cpu_seconds(group: Sequence[psutil.Process], children: bool = True) -> float:
    """Return the CPU seconds (user and system) that processes have used, with
    their children's unless told not to; a process gone counts what was read."""
    total = 0.0
    for process in group:
        try:
            family = [process, *process.children(recursive=True)] if children else [process]
        except psutil.NoSuchProcess:
            continue
        for one in family:
            try:
                total += sum(one.cpu_times()[:2])
            except psutil.NoSuchProcess:
                continue
    return total


def machine() -> str:
    """Describe this machine in one line: CPU count, RAM, Python, kernel."""
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{os.cpu_count()} CPUs, {memory:.0f} GiB RAM, Python {platform.python_version()}, "
        f"Linux {platform.release()}"
    )


def record(
    name: str,
    rows: list[Row],
    notes: Sequence[str] = (),
    results: Path = RESULTS,
    seconds: float | None = None,
) -> Path:
    """Write a benchmark's rows, with the machine, date, notes and its run time,
    to its results file in ``results``; return the file."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}.json"
    document = {
        "benchmark": name,
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "run_time_s": None if seconds is None else round(seconds, 1),
        "rows": [asdict(row) for row in rows],
        "notes": list(notes),
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def command(argv: Sequence[str] | None = None) -> str:
    """Return the command line that reruns this benchmark as it was run (its
    options, less where it recorded), from the repository root."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]).resolve()
    words = [".venv/bin/python", f"benchmarks/{script.name}"]
    rest = iter(argv[1:])
    for word in rest:
        if word == "--results":
            next(rest, None)
        elif not word.startswith("--results="):
            words.append(word)
    return " ".join(words)


def arguments(description: str | None) -> argparse.ArgumentParser:
    """Return a parser with the options every benchmark takes: ``--quick``
    (tiny sizes, for the smoke test) and ``--results`` (where to record)."""
    parser = argparse.ArgumentParser(description=(description or "").splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: checks that it runs, measures nothing"
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="directory of the results files"
    )
    return parser
