"""Tests of worker.telemetry: sampling the real machine with psutil."""

from __future__ import annotations

import itertools
import json
import math
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psutil
import pytest

from worker.runtimes.llama_cpp import available_cpus
from worker.telemetry import (
    MAX_INTERVAL_S,
    MIN_INTERVAL_S,
    TelemetryError,
    TelemetrySampler,
)


@contextmanager
def _busy_cores() -> Iterator[None]:
    """Keep every available CPU busy with a spinning process."""
    spin = [sys.executable, "-c", "while True: pass"]
    spinners = [subprocess.Popen(spin) for _ in range(available_cpus())]
    try:
        time.sleep(0.2)
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def _sample_for(seconds: float, interval_s: float = 0.1) -> TelemetrySampler:
    with TelemetrySampler(interval_s) as sampler:
        time.sleep(seconds)
    return sampler


def test_a_run_shorter_than_the_interval_has_a_first_and_a_final_sample() -> None:
    """Start and exit each take a sample, so a short run has two."""
    sampler = _sample_for(0.01, interval_s=5.0)
    series = sampler.series
    assert len(series) == 2
    assert series[0]["t"] == 0.0
    assert series[1]["t"] >= 0.01
    assert sampler.summary()["samples"] == 2


def test_samples_follow_the_interval() -> None:
    """Samples come every interval_s, measured from the start."""
    series = _sample_for(0.55, interval_s=0.1).series
    times = [sample["t"] for sample in series]
    assert 6 <= len(series) <= 8
    assert times == sorted(times)
    # The final sample comes at exit, whenever that is; the others on the interval.
    gaps = [later - earlier for earlier, later in itertools.pairwise(times[:-1])]
    assert all(0.05 < gap < 0.2 for gap in gaps)


def test_a_sample_has_every_measure() -> None:
    """CPU per core, memory, load, temperatures and I/O are all in a sample."""
    sample = _sample_for(0.25, interval_s=0.1).series[1]
    assert sample["cpu_percent"] is not None
    assert sample["cpu_percent_per_core"] is not None
    assert len(sample["cpu_percent_per_core"]) == len(psutil.cpu_times(percpu=True))
    assert sample["mem_used_bytes"] > 0 and sample["mem_available_bytes"] > 0
    assert 0 < sample["mem_percent"] < 100
    assert min(sample["load_1"], sample["load_5"], sample["load_15"]) >= 0
    assert all(isinstance(value, float) for value in sample["temperatures_c"].values())


def test_the_first_sample_has_no_cpu_figure() -> None:
    """CPU busy needs a window, so the start sample's CPU is None."""
    first = _sample_for(0.01).series[0]
    assert first["cpu_percent"] is None and first["cpu_percent_per_core"] is None


def test_busy_cores_show_more_cpu_than_idle() -> None:
    """Spinning on every CPU reads as busier than sleeping, near 100 %."""
    idle = _sample_for(1.0).summary()
    with _busy_cores():
        busy = _sample_for(1.0).summary()
    assert busy["cpu_percent_mean"] is not None and idle["cpu_percent_mean"] is not None
    # On a shared machine "idle" may already be saturated; busy must then be too.
    assert busy["cpu_percent_mean"] >= min(idle["cpu_percent_mean"], 95)
    assert busy["cpu_percent_mean"] >= 80
    assert busy["cpu_percent_max"] is not None and busy["cpu_percent_max"] >= 80


def test_io_deltas_are_non_negative_and_count_loopback_traffic() -> None:
    """Disk and network figures are bytes since start; 2 MB sent on loopback count."""
    payload = b"x" * 2_000_000
    with socket.create_server(("127.0.0.1", 0)) as server, TelemetrySampler(0.1) as sampler:
        received = threading.Thread(target=_receive_all, args=(server, len(payload)))
        received.start()
        with socket.create_connection(server.getsockname()) as client:
            client.sendall(payload)
        received.join()
    summary = sampler.summary()
    for sample in sampler.series:
        for key in ("disk_read_bytes", "disk_write_bytes", "net_sent_bytes", "net_recv_bytes"):
            assert sample[key] >= 0
    assert summary["net_sent_bytes"] >= len(payload)
    assert summary["net_recv_bytes"] >= len(payload)
    assert summary["disk_read_bytes"] >= 0 and summary["disk_write_bytes"] >= 0


def _receive_all(server: socket.socket, size: int) -> None:
    connection, _ = server.accept()
    with connection:
        while size > 0:
            size -= len(connection.recv(1 << 16))


@pytest.mark.parametrize(
    "interval", [0, MIN_INTERVAL_S / 2, MAX_INTERVAL_S + 1, -1, "0.5", True, math.nan]
)
def test_an_interval_out_of_range_is_refused(interval: Any) -> None:
    """The interval must be a number of seconds from 0.05 to 60."""
    with pytest.raises(
        ValueError, match=r"telemetry interval_s: expected seconds from 0\.05 to 60"
    ):
        TelemetrySampler(interval)


def test_the_sampler_reports_its_own_cost() -> None:
    """The summary gives the sampler thread's CPU seconds and their share of the time."""
    summary = _sample_for(1.0, interval_s=MIN_INTERVAL_S).summary()
    assert 0 < summary["sampler_cpu_s"] < summary["duration_s"]
    share = summary["sampler_cpu_s"] / summary["duration_s"]
    assert summary["sampler_cpu_share"] == pytest.approx(share, rel=1e-3)
    assert 0 < summary["sampler_cpu_share"] < 0.5


def test_the_series_stays_bounded_and_the_summary_counts_every_sample() -> None:
    """Past max_series the series is thinned; the summary still covers all samples."""
    with TelemetrySampler(MIN_INTERVAL_S, max_series=4) as sampler:
        time.sleep(1.0)
    summary, series = sampler.summary(), sampler.series
    assert summary["samples"] >= 12
    assert len(series) == summary["samples_kept"] <= 5
    assert summary["series_stride"] >= 4
    assert series[0]["t"] == 0.0 and series[-1]["t"] == summary["duration_s"]


def test_summary_and_series_are_json() -> None:
    """Samples and summary survive a JSON round trip unchanged."""
    sampler = _sample_for(0.15)
    report = {"series": sampler.series, "summary": sampler.summary()}
    assert json.loads(json.dumps(report)) == report


def test_summary_before_start_is_an_error() -> None:
    """A sampler that never sampled has no summary."""
    with pytest.raises(TelemetryError, match="no sample taken yet"):
        TelemetrySampler().summary()


def test_a_sampler_runs_once() -> None:
    """Starting a sampler a second time is refused."""
    sampler = _sample_for(0.01)
    with pytest.raises(TelemetryError, match="already started"):
        sampler.start()
