"""The worker's Celery application: the shared configuration, the run task,
the heartbeat bootstep and the hand-back at shutdown."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import worker_shutting_down

from controller.celery_config import make_celery
from worker.config import WorkerSettings
from worker.fingerprint import registration
from worker.heartbeat import HeartbeatLoop, HeartbeatStep, RegistryClient
from worker.tasks import hand_back, register_run_task

__all__ = ["make_worker_app", "worker_argv"]

logger = logging.getLogger(__name__)


def make_worker_app(settings: WorkerSettings) -> Celery:
    """Return the Celery app this node's worker runs."""
    app = make_celery(settings.broker_url, settings.limits)
    # On stop, a run gets this long to finish; then it is handed back to
    # its queue (acks are late) rather than killed and lost.
    app.conf.worker_soft_shutdown_timeout = settings.shutdown_grace_s
    register_run_task(app, settings)

    loops: list[HeartbeatLoop] = []

    def heartbeat(worker: Any) -> HeartbeatLoop:
        def body() -> dict[str, Any]:
            return registration(
                settings.node_id,
                settings.profile.tier,
                list(settings.queues),
                settings.catalog,
                settings.models_dir,
                settings.profile.address,
            )

        loop = HeartbeatLoop(
            app,
            worker,
            RegistryClient(
                settings.api_url,
                settings.token,
                keep_alive_s=2 * settings.heartbeat_interval_s + 1,
            ),
            settings.node_id,
            list(settings.queues),
            settings.heartbeat_interval_s,
            body,
        )
        loops.append(loop)
        return loop

    app.conf.research_heartbeat = heartbeat
    app.steps["worker"].add(HeartbeatStep)

    def on_shutdown(**_: Any) -> None:
        # Celery sends this after the soft-shutdown grace, when the run is
        # already cancelled; the heartbeat loop remembers which run it was.
        # A run that finished within the grace is uncounted harmlessly.
        runs = [loop.last_seen_run for loop in loops if loop.last_seen_run]
        hand_back(app.backend.client, runs)

    worker_shutting_down.connect(on_shutdown, weak=False)

    return app


def worker_argv(settings: WorkerSettings, loglevel: str = "INFO") -> list[str]:
    """Return the ``celery worker`` arguments for this node: concurrency 1,
    hostname = node id, and its queues in tier order."""
    return [
        "worker",
        f"--hostname={settings.hostname}",
        "--pool=prefork",
        "--concurrency=1",
        f"--queues={','.join(settings.queues)}",
        f"--loglevel={loglevel}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
