"""The controller's HTTP API: the capability registry and run submission.

Workers register and heartbeat; researchers submit, follow and cancel runs;
operators drain, undrain, deregister and revoke. Every request but
``/healthz`` carries a bearer token whose scope is checked before anything is
read or changed; every error is JSON with a ``reason``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import redis
from fastapi import Depends, FastAPI, HTTPException, Path, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller import __version__
from controller.auth import Identity, TokenBook
from controller.auth import Scope as TokenScope
from controller.catalog import Catalog, load_catalog
from controller.celery_config import make_celery
from controller.dispatcher import Dispatcher
from controller.metrics import ClusterCollector
from controller.recovery import LostNodeMonitor, requeue_abandoned
from controller.registry import NodeCapabilities, Registry, UnknownNode
from controller.runs import RunRefused, RunService, UnknownRun
from controller.schemas import (
    DrainRequest,
    ErrorBody,
    Heartbeat,
    NodeName,
    Registration,
    RevokeNode,
    RevokeRequest,
    RunRequest,
)
from controller.settings import ControllerSettings

__all__ = ["Services", "create_app"]

logger = logging.getLogger(__name__)
ERRORS = {
    401: "missing, unknown or revoked token",
    403: "the token's scope may not do this",
    404: "no such node or run",
    409: "no available node can serve the run; the decision says why",
    413: "request body too large",
    422: "invalid request; problems name each field",
    503: "the controller's Redis is unavailable",
}
RunId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")]
NodeId = Annotated[NodeName, Path()]


@dataclass
class Services:
    """What the endpoints work with; built once per process."""

    redis: redis.Redis
    registry: Registry
    runs: RunService
    tokens: TokenBook
    catalog: Catalog

    @classmethod
    def from_settings(cls, settings: ControllerSettings) -> Services:
        client = redis.Redis.from_url(settings.redis_url, health_check_interval=10)
        catalog = load_catalog(settings.catalog_file)
        registry = Registry(client, settings.policy)
        app = make_celery(settings.redis_url, settings.limits, waits_for_results=False)
        runs = RunService(client, app, Dispatcher(registry, catalog), catalog, settings.limits)
        tokens = TokenBook.load(settings.tokens_file, settings.worker_secret_file, client)
        return cls(client, registry, runs, tokens, catalog)


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        reason = f"request body larger than {self.max_bytes} bytes"
        await _error(413, reason)(scope, receive, send)


def _error(code: int, reason: str, **details: Any) -> JSONResponse:
    return JSONResponse({"error": {"status": code, "reason": reason, **details}}, code)


def _fail(code: int, reason: str) -> HTTPException:
    return HTTPException(code, reason)


def create_app(
    settings: ControllerSettings, services: Services | None = None, monitor: bool = True
) -> FastAPI:
    """Return the API application; ``services`` may be given by tests."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = services or Services.from_settings(settings)
        watcher = LostNodeMonitor(app.state.services.registry) if monitor else None
        if watcher:
            watcher.start()
        yield
        if watcher:
            watcher.stop()

    app = FastAPI(
        title="research-orchestration controller",
        version=__version__,
        lifespan=lifespan,
        description="Capability registry and run submission of the inference cluster.",
        responses={
            code: {"model": ErrorBody, "description": text} for code, text in ERRORS.items()
        },
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    _install_error_handlers(app)
    _install_routes(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        response = _error(exc.status_code, str(exc.detail))
        if exc.status_code == status.HTTP_401_UNAUTHORIZED:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"][1:]) or "body", "problem": e["msg"]}
            for e in exc.errors()
        ]
        first = problems[0] if problems else {"field": "body", "problem": "invalid"}
        reason = f"invalid request: {first['field']}: {first['problem']}"
        return _error(422, reason, problems=problems)

    @app.exception_handler(RunRefused)
    async def refused(request: Request, exc: RunRefused) -> JSONResponse:
        return _error(409, exc.decision.reason, decision=exc.decision.as_dict())

    @app.exception_handler(redis.RedisError)
    async def redis_down(request: Request, exc: redis.RedisError) -> JSONResponse:
        logger.error("redis: %s", exc)
        return _error(503, "the controller's Redis is unavailable; retry later")


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _services_of(request: Request) -> Services:
    # A coroutine, so that FastAPI calls it on the event loop rather than
    # handing it to a worker thread for every request.
    return _services(request)


def require(*scopes: TokenScope) -> Callable[..., Awaitable[Identity]]:
    """Return a dependency that yields the caller's identity if its token has
    one of ``scopes``, and refuses with 401 or 403 otherwise."""
    names = " or ".join(scopes)

    async def identify(request: Request) -> Identity:
        header = request.headers.get("authorization", "")
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise _fail(401, "missing bearer token: send 'Authorization: Bearer <token>'")
        identity = _services(request).tokens.identify(token.strip())
        if identity is None:
            raise _fail(401, "unknown or revoked token")
        if not any(identity.may(scope) for scope in scopes):
            raise _fail(403, f"a {identity.scope} token may not do this; it needs {names}")
        return identity

    return identify


Worker = Annotated[Identity, Depends(require(TokenScope.WORKER))]
Researcher = Annotated[Identity, Depends(require(TokenScope.RESEARCHER))]
Operator = Annotated[Identity, Depends(require(TokenScope.OPERATOR))]
Anyone = Annotated[Identity, Depends(require(TokenScope.RESEARCHER, TokenScope.OPERATOR))]
ServicesDep = Annotated[Services, Depends(_services_of)]


def _own_node(identity: Identity, node_id: str) -> None:
    if identity.node_id != node_id:
        raise _fail(403, f"this worker token belongs to {identity.node_id!r}, not {node_id!r}")


def _install_routes(app: FastAPI) -> None:  # noqa: PLR0915 - the API, listed in one place
    @app.get("/healthz", tags=["health"])
    def healthz(services: ServicesDep) -> dict[str, Any]:
        """Answer 200 when the controller and its Redis are up."""
        services.redis.ping()
        return {"status": "ok", "version": __version__, "time": time.time()}

    @app.post("/v1/nodes/register", tags=["registry"])
    def register(body: Registration, who: Worker, services: ServicesDep) -> dict[str, Any]:
        """Register (or re-register) the calling worker's node."""
        _own_node(who, body.node_id)
        registered = services.registry.register(NodeCapabilities(**body.model_dump()))
        if registered.abandoned_run:
            requeue_abandoned(services.redis, body.node_id, registered.abandoned_run)
        return {
            "node_id": body.node_id,
            "draining": registered.draining,
            "heartbeat_interval_s": services.registry.policy.interval_s,
        }

    # A coroutine that calls Redis directly, as the token check before it does:
    # a heartbeat is one short Redis call, and handing thousands of them a
    # second to worker threads left the event loop starved of the GIL, so that
    # answers waited seconds with the CPU half idle (benchmarks/scale.py).
    @app.post("/v1/nodes/{node_id}/heartbeat", tags=["registry"])
    async def heartbeat(
        node_id: NodeId, body: Heartbeat, who: Worker, services: ServicesDep
    ) -> dict[str, Any]:
        """Record a heartbeat; the answer says whether the node must drain."""
        _own_node(who, node_id)
        try:
            drain = services.registry.heartbeat(
                node_id, body.run_id, body.consuming, body.problems
            )
        except UnknownNode:
            raise _fail(404, f"node {node_id!r} is not registered; register first") from None
        return {"node_id": node_id, "draining": drain is not None, "drain": drain}

    @app.get("/v1/nodes", tags=["registry"])
    def nodes(who: Anyone, services: ServicesDep) -> dict[str, Any]:
        """List every registered node with its state."""
        now = time.time()
        return {"nodes": [view.as_dict(now) for view in services.registry.nodes(now=now)]}

    @app.get("/v1/nodes/{node_id}", tags=["registry"])
    def node(node_id: NodeId, who: Anyone, services: ServicesDep) -> dict[str, Any]:
        """Show one node."""
        try:
            return services.registry.node(node_id).as_dict(time.time())
        except UnknownNode:
            raise _fail(404, f"node {node_id!r} is not registered") from None

    @app.post("/v1/nodes/{node_id}/drain", tags=["operations"])
    def drain(
        node_id: NodeId, body: DrainRequest, who: Operator, services: ServicesDep
    ) -> dict[str, Any]:
        """Stop a node taking new runs once its current run ends."""
        try:
            services.registry.drain(node_id, who.name, body.reason)
            return services.registry.node(node_id).as_dict(time.time())
        except UnknownNode:
            raise _fail(404, f"node {node_id!r} is not registered") from None

    @app.post("/v1/nodes/{node_id}/undrain", tags=["operations"])
    def undrain(node_id: NodeId, who: Operator, services: ServicesDep) -> dict[str, Any]:
        """Return a draining node to service."""
        try:
            services.registry.undrain(node_id)
            return services.registry.node(node_id).as_dict(time.time())
        except UnknownNode:
            raise _fail(404, f"node {node_id!r} is not registered") from None

    @app.delete("/v1/nodes/{node_id}", tags=["operations"])
    def deregister(node_id: NodeId, who: Operator, services: ServicesDep) -> dict[str, Any]:
        """Remove a node from the registry (decommissioning)."""
        try:
            services.registry.deregister(node_id)
        except UnknownNode:
            raise _fail(404, f"node {node_id!r} is not registered") from None
        return {"node_id": node_id, "deregistered": True}

    @app.post("/v1/tokens/revoke", tags=["operations"])
    def revoke(body: RevokeRequest, who: Operator, services: ServicesDep) -> dict[str, Any]:
        """Revoke a worker's token (by node) or any token (by fingerprint)."""
        if isinstance(body, RevokeNode):
            digest = services.tokens.revoke_worker(body.node_id, who.name)
        else:
            digest = body.fingerprint
            services.tokens.revoke(digest, who.name)
        return {"revoked": digest}

    # A coroutine for the reason the heartbeat is one: a few short Redis calls
    # and a publish, cheaper on the event loop than a hop to a worker thread.
    @app.post("/v1/runs", status_code=202, tags=["runs"])
    async def submit(body: RunRequest, who: Researcher, services: ServicesDep) -> dict[str, Any]:
        """Queue a run on the smallest tier that can serve it, or refuse (409)."""
        submitted = services.runs.submit(body, who)
        return {
            "run_id": submitted.run_id,
            "queue": submitted.queue,
            "reason": submitted.decision.reason,
        }

    @app.post("/v1/runs/explain", tags=["runs"])
    def explain(body: RunRequest, who: Researcher, services: ServicesDep) -> dict[str, Any]:
        """Show where a run would go and why, queueing nothing."""
        return services.runs.explain(body).as_dict()

    @app.get("/v1/runs/{run_id}", tags=["runs"])
    def run(run_id: RunId, who: Researcher, services: ServicesDep) -> dict[str, Any]:
        """Show a run's state and, once it has finished, its result."""
        try:
            return services.runs.status(run_id)
        except UnknownRun:
            raise _fail(404, f"no run {run_id!r} (never submitted, or expired)") from None

    @app.post("/v1/runs/{run_id}/cancel", tags=["runs"])
    def cancel(run_id: RunId, who: Researcher, services: ServicesDep) -> dict[str, Any]:
        """Cancel a queued or running run."""
        try:
            return services.runs.cancel(run_id, who)
        except UnknownRun:
            raise _fail(404, f"no run {run_id!r} (never submitted, or expired)") from None

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    def metrics(who: Anyone, services: ServicesDep) -> PlainTextResponse:
        """Prometheus metrics of nodes, queues and runs."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(ClusterCollector(services.registry))
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/queues", tags=["runs"])
    def queues(who: Anyone, services: ServicesDep) -> dict[str, Any]:
        """Show each queue's depth and its oldest waiting run's wait."""
        return {"queues": services.runs.queues()}
