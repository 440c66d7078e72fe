"""Run this node's worker: ``python -m worker`` (what its systemd unit runs).

``python -m worker --check`` reads the settings, node profile, catalog and
token as the service would, says what is wrong, and exits.
"""

from __future__ import annotations

import logging
import os
import sys

# SIGTERM (systemd's stop) starts Celery's cold shutdown with a soft grace:
# the run may finish within the grace, else it is handed back to its queue.
# Celery reads this when its worker module is imported, so it is set first.
os.environ.setdefault("REMAP_SIGTERM", "SIGQUIT")

from controller.catalog import CatalogError
from controller.celery_config import ConfigError
from worker.app import make_worker_app, worker_argv
from worker.config import WorkerSettings


def main() -> int:
    try:
        settings = WorkerSettings.from_env()
    except (ConfigError, CatalogError, OSError) as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2
    if "--check" in sys.argv[1:]:
        print(f"worker: configuration of {settings.node_id} is valid")
        return 0
    # One line per heartbeat request would drown the worker's own log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = make_worker_app(settings)
    app.worker_main(worker_argv(settings, os.environ.get("RESEARCH_LOG_LEVEL", "INFO")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
