"""Hardware telemetry of a run: a background thread that samples the machine.

``TelemetrySampler`` takes a sample when it starts, one every ``interval_s``
while it runs, and a final one when it stops, so that even a run shorter
than the interval has two. Every figure is of the whole machine, as the
kernel reports it: a worker runs one run at a time, so they belong to it.

A sample holds, at ``t`` seconds since the start: CPU busy percent, overall
and per core, over the time since the previous sample (None for the first
sample and for a window under ``MIN_INTERVAL_S``, too short for the kernel's
tick accounting); memory used and available; the load averages; every
temperature that ``psutil.sensors_temperatures()`` reports (none on most
virtual machines); and disk and network bytes since the start. ``t`` is when
the counters were read; a thread spinning in pure Python holds the GIL and
can delay a sample by tens of milliseconds (llama.cpp releases it).

Limitation: inside a container without its own /proc (the lab's
systemd-nspawn machines), CPU, memory, load and disk figures are the host's;
network figures are the container's own. They are exact on a real node.

Memory stays bounded: once ``max_series`` samples are kept, every other one
is dropped and from then on only every second sample is kept, and so on
(``series_stride`` in the summary). The summary is computed from every
sample taken, not only the kept ones.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypedDict

import psutil

__all__ = [
    "MAX_INTERVAL_S",
    "MAX_SERIES",
    "MIN_INTERVAL_S",
    "Sample",
    "TelemetryError",
    "TelemetrySampler",
    "TelemetrySummary",
    "validate_interval",
]

logger = logging.getLogger(__name__)

MIN_INTERVAL_S = 0.05
MAX_INTERVAL_S = 60.0
MAX_SERIES = 2000


class TelemetryError(RuntimeError):
    """The machine could not be sampled, or the sampler was misused."""


class Sample(TypedDict):
    t: float
    cpu_percent: float | None
    cpu_percent_per_core: list[float] | None
    mem_used_bytes: int
    mem_available_bytes: int
    mem_percent: float
    load_1: float
    load_5: float
    load_15: float
    temperatures_c: dict[str, float]
    disk_read_bytes: int
    disk_write_bytes: int
    net_sent_bytes: int
    net_recv_bytes: int


class TelemetrySummary(TypedDict):
    samples: int
    samples_kept: int
    series_stride: int
    duration_s: float
    cpu_percent_mean: float | None
    cpu_percent_max: float | None
    mem_used_max_bytes: int
    mem_available_min_bytes: int
    load_1_max: float
    temperature_max_c: float | None
    disk_read_bytes: int
    disk_write_bytes: int
    net_sent_bytes: int
    net_recv_bytes: int
    sampler_cpu_s: float
    sampler_cpu_share: float


def validate_interval(interval_s: Any) -> float:
    """Return ``interval_s`` as a float; raise ValueError unless it is a
    number from MIN_INTERVAL_S to MAX_INTERVAL_S."""
    if (
        isinstance(interval_s, bool)
        or not isinstance(interval_s, (int, float))
        or not MIN_INTERVAL_S <= interval_s <= MAX_INTERVAL_S
    ):
        raise ValueError(
            f"telemetry interval_s: expected seconds from {MIN_INTERVAL_S} to "
            f"{MAX_INTERVAL_S}, got {interval_s!r}"
        )
    return float(interval_s)


@dataclass(frozen=True)
class _Counters:
    """The machine's cumulative counters at one moment."""

    at: float
    cpu: tuple[tuple[float, float], ...]
    disk: tuple[int, int]
    net: tuple[int, int]

    @classmethod
    def read(cls) -> _Counters:
        disk = psutil.disk_io_counters()
        net = psutil.net_io_counters()
        return cls(
            at=time.monotonic(),
            cpu=tuple(_busy_and_total(core) for core in psutil.cpu_times(percpu=True)),
            disk=(disk.read_bytes, disk.write_bytes) if disk else (0, 0),
            net=(net.bytes_sent, net.bytes_recv) if net else (0, 0),
        )


def _busy_and_total(times: Any) -> tuple[float, float]:
    """Return one core's busy and total CPU seconds; guest time is already
    counted in user time, and iowait is idle."""
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


def _cpu_percent(before: _Counters, after: _Counters) -> tuple[float | None, list[float] | None]:
    """Return the overall and per-core busy percent between two readings."""
    if after.at - before.at < MIN_INTERVAL_S:
        return None, None
    deltas = [(b2 - b1, t2 - t1) for (b1, t1), (b2, t2) in zip(before.cpu, after.cpu, strict=True)]
    per_core = [_percent(busy, total) for busy, total in deltas]
    overall = _percent(sum(b for b, _ in deltas), sum(t for _, t in deltas))
    return overall, per_core


def _percent(busy: float, total: float) -> float:
    return round(min(max(100.0 * busy / total, 0.0), 100.0), 1) if total > 0 else 0.0


def _temperatures() -> dict[str, float]:
    read = getattr(psutil, "sensors_temperatures", None)
    if read is None:
        return {}
    found = {}
    for chip, sensors in read().items():
        for index, sensor in enumerate(sensors):
            found[f"{chip}/{sensor.label or index}"] = float(sensor.current)
    return found


def _sample(origin: _Counters, before: _Counters, now: _Counters) -> Sample:
    cpu, per_core = _cpu_percent(before, now)
    memory = psutil.virtual_memory()
    load_1, load_5, load_15 = psutil.getloadavg()
    return {
        "t": round(now.at - origin.at, 4),
        "cpu_percent": cpu,
        "cpu_percent_per_core": per_core,
        "mem_used_bytes": memory.used,
        "mem_available_bytes": memory.available,
        "mem_percent": memory.percent,
        "load_1": load_1,
        "load_5": load_5,
        "load_15": load_15,
        "temperatures_c": _temperatures(),
        "disk_read_bytes": max(now.disk[0] - origin.disk[0], 0),
        "disk_write_bytes": max(now.disk[1] - origin.disk[1], 0),
        "net_sent_bytes": max(now.net[0] - origin.net[0], 0),
        "net_recv_bytes": max(now.net[1] - origin.net[1], 0),
    }


class _Extremes:
    """Running extremes over every sample taken."""

    def __init__(self, first: Sample) -> None:
        self.cpu_max = first["cpu_percent"]
        self.mem_used_max = first["mem_used_bytes"]
        self.mem_available_min = first["mem_available_bytes"]
        self.load_max = first["load_1"]
        self.temperature_max = max(first["temperatures_c"].values(), default=None)

    def add(self, sample: Sample) -> None:
        self.cpu_max = _max_of(self.cpu_max, sample["cpu_percent"])
        self.mem_used_max = max(self.mem_used_max, sample["mem_used_bytes"])
        self.mem_available_min = min(self.mem_available_min, sample["mem_available_bytes"])
        self.load_max = max(self.load_max, sample["load_1"])
        hottest = max(sample["temperatures_c"].values(), default=None)
        self.temperature_max = _max_of(self.temperature_max, hottest)


def _max_of(current: float | None, new: float | None) -> float | None:
    if current is None or new is None:
        return new if current is None else current
    return max(current, new)


class TelemetrySampler:
    """Samples the machine every ``interval_s`` on a background thread.

    Use it as a context manager around the work it measures, then read
    ``series`` and ``summary()``. Raises ValueError for an interval outside
    MIN_INTERVAL_S..MAX_INTERVAL_S or a ``max_series`` under 2.
    """

    def __init__(self, interval_s: float = 0.5, max_series: int = MAX_SERIES) -> None:
        self.interval_s = validate_interval(interval_s)
        if max_series < 2:
            raise ValueError(f"telemetry max_series: expected at least 2, got {max_series}")
        self.max_series = max_series
        self._series: list[Sample] = []
        self._stride = 1
        self._taken = 0
        self._origin: _Counters | None = None
        self._previous: _Counters | None = None
        self._extremes: _Extremes | None = None
        self._cpu_s = 0.0
        self._error: BaseException | None = None
        self._started = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="telemetry-sampler", daemon=True)

    def __enter__(self) -> TelemetrySampler:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Take the first sample and start sampling; raise TelemetryError if
        the machine cannot be sampled or the sampler was started before."""
        if self._thread.is_alive() or self._taken:
            raise TelemetryError("telemetry sampler: already started; a sampler runs once")
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise TelemetryError(f"telemetry sampler: cannot sample: {self._error}")

    def stop(self) -> None:
        """Take the final sample and stop the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def series(self) -> list[Sample]:
        """Return the kept samples, oldest first."""
        return list(self._series)

    def summary(self) -> TelemetrySummary:
        """Return the statistics of every sample taken.

        Raises TelemetryError before the first sample.
        """
        if self._origin is None or self._previous is None or self._extremes is None:
            raise TelemetryError("telemetry sampler: no sample taken yet; start it first")
        first, last, extremes = self._origin, self._previous, self._extremes
        duration = last.at - first.at
        cpu_mean, _ = _cpu_percent(first, last)
        return {
            "samples": self._taken,
            "samples_kept": len(self._series),
            "series_stride": self._stride,
            "duration_s": round(duration, 4),
            "cpu_percent_mean": cpu_mean,
            "cpu_percent_max": extremes.cpu_max,
            "mem_used_max_bytes": extremes.mem_used_max,
            "mem_available_min_bytes": extremes.mem_available_min,
            "load_1_max": extremes.load_max,
            "temperature_max_c": extremes.temperature_max,
            "disk_read_bytes": max(last.disk[0] - first.disk[0], 0),
            "disk_write_bytes": max(last.disk[1] - first.disk[1], 0),
            "net_sent_bytes": max(last.net[0] - first.net[0], 0),
            "net_recv_bytes": max(last.net[1] - first.net[1], 0),
            "sampler_cpu_s": round(self._cpu_s, 6),
            "sampler_cpu_share": round(self._cpu_s / duration, 6) if duration > 0 else 0.0,
        }

    def _run(self) -> None:
        cpu_start = time.thread_time()
        try:
            self._take(final=False)
        except Exception as exc:  # reported by start() in the caller's thread
            self._error = exc
        finally:
            self._started.set()
        if self._error is None:
            self._loop()
        self._cpu_s = time.thread_time() - cpu_start

    def _loop(self) -> None:
        assert self._origin is not None
        ticks = 1
        try:
            while not self._stop.wait(
                self._origin.at + ticks * self.interval_s - time.monotonic()
            ):
                self._take(final=False)
                # After a stall, skip the ticks already missed instead of bursting.
                elapsed = time.monotonic() - self._origin.at
                ticks = max(ticks + 1, int(elapsed / self.interval_s) + 1)
            self._take(final=True)
        except Exception:
            logger.exception("telemetry: sampling failed after %s samples; stopped", self._taken)

    def _take(self, final: bool) -> None:
        now = _Counters.read()
        origin = self._origin or now
        sample = _sample(origin, self._previous or now, now)
        self._origin, self._previous = origin, now
        if self._extremes is None:
            self._extremes = _Extremes(sample)
        else:
            self._extremes.add(sample)
        self._keep(sample, self._taken, final)
        self._taken += 1

    def _keep(self, sample: Sample, index: int, final: bool) -> None:
        if index % self._stride and not final:
            return
        if len(self._series) >= self.max_series:
            self._series = self._series[::2]
            self._stride *= 2
            if index % self._stride and not final:
                return
        self._series.append(sample)
