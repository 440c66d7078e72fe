"""The reference worker: plain Celery, the project's Celery settings, a no-op task.

The same broker settings as the project's workers (``make_celery``: prefork,
concurrency 1, late acks, prefetch off, JSON, results in Redis) and the same
command-line options (``worker.app.worker_argv``), but no registry, heartbeat,
attempt counting or telemetry: what Celery alone costs.

    BENCH_BROKER_URL=... BENCH_PROBE_URL=... BENCH_NODE=plain-1 \
        python -m benchmarks.plain_worker
"""

from __future__ import annotations

import os
import sys

from benchmarks import probes
from controller.celery_config import make_celery

NOOP_TASK = "bench.noop"
QUEUE = "research-any"

app = make_celery(os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/1"))


@app.task(name=NOOP_TASK)  # type: ignore[untyped-decorator]
def noop() -> None:
    """Do nothing: the reference run."""


def main() -> int:
    probes.install(os.environ[probes.PROBE_ENV])
    app.worker_main(
        [
            "worker",
            f"--hostname=celery@{os.environ.get('BENCH_NODE', 'plain')}",
            "--pool=prefork",
            "--concurrency=1",
            f"--queues={QUEUE}",
            f"--loglevel={os.environ.get('RESEARCH_LOG_LEVEL', 'INFO')}",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
