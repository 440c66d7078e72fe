"""Timestamps from inside workers, on the one clock every process here shares.

A probe pushes ``"<task id> <time>"`` to a Redis list when Celery's
``task_prerun`` and ``task_postrun`` signals fire in a worker's pool process,
with ``time.monotonic()`` (CLOCK_MONOTONIC, the same for every process of the
machine). The project's worker (benchmarks.probe_worker) and the plain Celery
worker of the references (benchmarks.plain_worker) carry the same probe, so
both are timed at the same point: the pool process, just before the task's
body. The probe's own Redis write comes after the timestamp it records.

``python -m benchmarks.probes echo URL`` runs the floor of the comparisons:
a process that pops each item pushed to ``bench:ping`` (BRPOP) and answers
with the time it got it.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import redis

from controller.registry import text

__all__ = ["ECHO_IN", "ECHO_OUT", "FINISHED", "PROBE_ENV", "STARTED", "Probe", "install"]

PROBE_ENV = "BENCH_PROBE_URL"
STARTED = "bench:started"
FINISHED = "bench:finished"
READY = "bench:ready"
ECHO_IN = "bench:ping"
ECHO_OUT = "bench:pong"


def install(url: str) -> None:
    """Connect the probe to the Celery signals of this process (and its forks)."""
    from celery.signals import task_postrun, task_prerun, worker_ready

    clients: dict[int, redis.Redis] = {}

    def client() -> redis.Redis:
        # One client per process: the pool process is forked after this.
        pid = os.getpid()
        if pid not in clients:
            clients[pid] = redis.Redis.from_url(url)
        return clients[pid]

    def started(task_id: str, **_: Any) -> None:
        now = time.monotonic()
        client().rpush(STARTED, f"{task_id} {now!r}")

    def finished(task_id: str, **_: Any) -> None:
        now = time.monotonic()
        client().rpush(FINISHED, f"{task_id} {now!r}")

    def ready(sender: Any, **_: Any) -> None:
        client().rpush(READY, str(sender.hostname))

    task_prerun.connect(started, weak=False)
    task_postrun.connect(finished, weak=False)
    worker_ready.connect(ready, weak=False)


@dataclass
class Probe:
    """The benchmark's side: reads what the probes of its workers pushed."""

    client: redis.Redis

    def clear(self) -> None:
        self.client.delete(STARTED, FINISHED, ECHO_OUT)

    def started(self, timeout_s: float = 30.0) -> tuple[str, float]:
        """Return the next task start (id, time); raise TimeoutError."""
        return self._pop(STARTED, timeout_s)

    def finished(self, timeout_s: float = 30.0) -> tuple[str, float]:
        """Return the next task end (id, time); raise TimeoutError."""
        return self._pop(FINISHED, timeout_s)

    def finished_count(self) -> int:
        return int(self.client.llen(FINISHED))

    def finish_times(self) -> list[float]:
        return [float(item.split()[1]) for item in self.client.lrange(FINISHED, 0, -1)]

    def ready(self, hostname: str, timeout_s: float = 60.0) -> None:
        """Return once the worker ``hostname`` is ready; raise TimeoutError."""
        deadline = time.monotonic() + timeout_s
        while hostname.encode() not in self.client.lrange(READY, 0, -1):
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker {hostname} not ready within {timeout_s} s")
            time.sleep(0.05)

    def echo(self, timeout_s: float = 10.0) -> float:
        """Return the time of one LPUSH -> BRPOP hop to the echo process."""
        sent = time.monotonic()
        self.client.lpush(ECHO_IN, repr(sent))
        reply = self.client.blpop([ECHO_OUT], timeout=timeout_s)
        if reply is None:
            raise TimeoutError("the echo process did not answer")
        return float(reply[1]) - sent

    def _pop(self, key: str, timeout_s: float) -> tuple[str, float]:
        reply = self.client.blpop([key], timeout=timeout_s)
        if reply is None:
            raise TimeoutError(f"nothing on {key} within {timeout_s} s")
        task_id, at = text(reply[1]).split()
        return task_id, float(at)


def echo(url: str) -> None:
    """Answer every item on bench:ping with the time it was popped, until killed."""
    client = redis.Redis.from_url(url)
    while True:
        reply = client.brpop([ECHO_IN], timeout=0)
        now = time.monotonic()
        if reply is not None:
            client.rpush(ECHO_OUT, repr(now))


if __name__ == "__main__":
    if sys.argv[1:2] == ["echo"]:
        echo(sys.argv[2])
