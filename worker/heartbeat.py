"""Registration, heartbeats and drain, run beside the Celery worker.

A thread in the worker's main process registers the node with the
controller, then heartbeats: at the configured interval, and at once when a
run starts or ends, reporting the run, the queues it consumes and anything
wrong. The controller's answer says whether the node is draining; a draining
worker cancels its queue consumers (its current run finishes, nothing new
starts) and adds them back, in tier order, when it is undrained.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import httpx
from celery import Celery, bootsteps
from celery.worker import state as worker_state

__all__ = ["HeartbeatStep", "NotRegistered", "RegistryClient"]

logger = logging.getLogger(__name__)
_POLL_S = 0.2


class NotRegistered(Exception):
    """The controller does not know this node (yet, or any more)."""


class RegistryClient:
    """The worker's side of the controller's registry API."""

    def __init__(
        self, api_url: str, token: str, timeout_s: float = 5.0, keep_alive_s: float = 5.0
    ) -> None:
        # The connection is kept for ``keep_alive_s`` idle seconds; past the
        # heartbeat interval, every heartbeat reuses it instead of opening one.
        self.http = httpx.Client(
            base_url=api_url,
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {token}"},
            limits=httpx.Limits(
                max_connections=100, max_keepalive_connections=20, keepalive_expiry=keep_alive_s
            ),
        )

    def register(self, body: dict[str, Any]) -> dict[str, Any]:
        """Register this node; raise httpx.HTTPError if the controller refuses."""
        response = self.http.post("/v1/nodes/register", json=body)
        response.raise_for_status()
        reply: dict[str, Any] = response.json()
        return reply

    def heartbeat(
        self, node_id: str, run_id: str | None, consuming: list[str], problems: list[str]
    ) -> dict[str, Any]:
        """Send a heartbeat; raise NotRegistered on 404, httpx.HTTPError otherwise."""
        response = self.http.post(
            f"/v1/nodes/{node_id}/heartbeat",
            json={"run_id": run_id, "consuming": consuming, "problems": problems},
        )
        if response.status_code == 404:
            raise NotRegistered(node_id)
        response.raise_for_status()
        reply: dict[str, Any] = response.json()
        return reply


def current_run_id() -> str | None:
    """Return the id of the run this worker executes now, if any."""
    for _ in range(3):
        try:
            return next((r.id for r in list(worker_state.active_requests)), None)
        except RuntimeError:  # the set changed while we read it
            continue
    return None


class HeartbeatLoop(threading.Thread):
    """Keeps the node registered, heartbeating and drained as the controller says."""

    def __init__(
        self,
        app: Celery,
        worker: Any,
        client: RegistryClient,
        node_id: str,
        queues: list[str],
        interval_s: float,
        registration: Callable[[], dict[str, Any]],
    ) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.app, self.worker, self.client = app, worker, client
        self.node_id, self.queues, self.interval_s = node_id, queues, interval_s
        self.registration = registration
        self.stopping = threading.Event()
        self.registered = False
        self.drained = False
        self._last_beat = 0.0
        self._last_run: str | None = None
        self._failures = 0
        # The run seen executing at the last poll; kept after it ends, so that
        # a shutdown can still tell which run it handed back.
        self.last_seen_run: str | None = None

    def run(self) -> None:
        # Register once the consumer reads its queues, so that the first
        # heartbeat does not report a worker that is merely starting.
        started = time.monotonic()
        while not self.consuming() and time.monotonic() - started < 30:
            if self.stopping.wait(_POLL_S):
                return
        while not self.stopping.wait(_POLL_S):
            run_id = current_run_id()
            self.last_seen_run = run_id or self.last_seen_run
            due = time.monotonic() - self._last_beat >= self.interval_s
            if due or run_id != self._last_run:
                self.beat_safely(run_id)

    def beat_safely(self, run_id: str | None) -> None:
        """Beat, and never let a failure end the loop: a broker or controller
        outage must not silence the node after it is over."""
        try:
            self.beat(run_id)
        except Exception:
            logger.exception("node %s: heartbeat failed; retrying next interval", self.node_id)

    def beat(self, run_id: str | None) -> None:
        """Register if needed, send one heartbeat and apply the drain answer."""
        self._last_beat = time.monotonic()
        try:
            if not self.registered:
                reply = self.client.register(self.registration())
                self.registered = True
                logger.info("node %s: registered with the controller", self.node_id)
                self.apply_drain(bool(reply.get("draining")))
            reply = self.client.heartbeat(self.node_id, run_id, self.consuming(), self.problems())
        except NotRegistered:
            logger.warning("node %s: unknown to the controller, registering again", self.node_id)
            self.registered = False
            return
        except httpx.HTTPError as exc:
            self._failures += 1
            if self._failures in (1, 10) or self._failures % 100 == 0:
                logger.warning(
                    "node %s: heartbeat failed (%d in a row): %s",
                    self.node_id,
                    self._failures,
                    exc,
                )
            return
        self._last_run, self._failures = run_id, 0
        self.apply_drain(bool(reply.get("draining")))

    def consuming(self) -> list[str]:
        """Return the queues the worker's consumer reads now."""
        consumer = getattr(self.worker, "consumer", None)
        task_consumer = getattr(consumer, "task_consumer", None)
        if task_consumer is None:
            return []
        return [queue.name for queue in list(task_consumer.queues)]

    def problems(self) -> list[str]:
        problems = []
        connection = getattr(getattr(self.worker, "consumer", None), "connection", None)
        if connection is None or not connection.connected:
            problems.append("not connected to the broker")
        elif not self.drained and not self.consuming():
            problems.append("not consuming any queue")
        return problems

    def apply_drain(self, draining: bool) -> None:
        """Cancel or restore queue consumers to match the controller's drain flag.

        Compared with what the consumer reads now, not with what was last
        done: a consumer that reconnects to the broker reads all its queues
        again, and a draining worker must cancel them again.
        """
        destination = [self.worker.hostname]
        control = self.app.control
        consuming = self.consuming()
        if draining and consuming:
            for queue in consuming:
                control.cancel_consumer(queue, destination=destination, reply=True, timeout=5)
            self.drained = True
            logger.info("node %s: draining, consumers cancelled", self.node_id)
        elif not draining and self.drained:
            for queue in self.queues:  # in tier order: the order they are read in
                control.add_consumer(queue, destination=destination, reply=True, timeout=5)
            self.drained = False
            logger.info("node %s: consuming again", self.node_id)

    def stop(self) -> None:
        self.stopping.set()


class HeartbeatStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Worker bootstep that runs the heartbeat loop while the worker runs.

    It belongs to the worker, not the consumer, so that it keeps reporting
    (and reports the broker problem) while the consumer reconnects.
    """

    requires: ClassVar[set[str]] = {"celery.worker.components:Pool"}

    def __init__(self, worker: Any, **options: Any) -> None:
        super().__init__(worker, **options)
        self.loop: HeartbeatLoop | None = None

    def start(self, worker: Any) -> None:
        factory: Callable[[Any], HeartbeatLoop] = worker.app.conf.research_heartbeat
        self.loop = factory(worker)
        self.loop.start()

    def stop(self, worker: Any) -> None:
        if self.loop is not None:
            self.loop.stop()
