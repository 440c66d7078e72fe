"""The controller API over HTTP, with a real Redis behind it: every endpoint and error."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import redis
from fastapi.testclient import TestClient

from controller.api import create_app
from controller.celery_config import ConfigError
from controller.settings import ControllerSettings
from tests.services import ControllerFiles, RedisServer, controller_files, controller_service
from worker.heartbeat import RegistryClient

RUN = {"model": "gemma3-270m", "prompt": "Say hello.", "max_tokens": 8}


def registration(node_id: str = "lab-micro-1", **changes: Any) -> dict[str, Any]:
    body = {
        "node_id": node_id,
        "tier": "micro",
        "queues": ["research-micro", "research-any"],
        "ram_gb": 3.8,
        "cpus": 4,
        "arch": "x86_64",
        "models": {
            "gemma3-270m": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
        },
    }
    return {**body, **changes}


@pytest.fixture
def files(tmp_path: Path) -> ControllerFiles:
    return controller_files(tmp_path / "controller")


@pytest.fixture
def api(
    files: ControllerFiles, redis_service: RedisServer, redis_client: redis.Redis
) -> Iterator[TestClient]:
    settings = ControllerSettings.from_env(files.env(redis_service.url))
    with TestClient(create_app(settings, monitor=False)) as client:
        yield client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def as_worker(files: ControllerFiles, node_id: str = "lab-micro-1") -> dict[str, str]:
    return auth(files.worker_token(node_id))


@pytest.fixture
def registered(api: TestClient, files: ControllerFiles) -> str:
    reply = api.post("/v1/nodes/register", json=registration(), headers=as_worker(files))
    assert reply.status_code == 200, reply.text
    assert reply.json()["draining"] is False
    return "lab-micro-1"


def test_healthz_needs_no_token(api: TestClient) -> None:
    """/healthz answers ok without credentials."""
    reply = api.get("/healthz")
    assert reply.status_code == 200 and reply.json()["status"] == "ok"


def test_openapi_document_lists_every_endpoint(api: TestClient) -> None:
    """The OpenAPI description covers registry, operations and runs."""
    paths = api.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/nodes/register",
        "/v1/nodes/{node_id}/heartbeat",
        "/v1/nodes",
        "/v1/nodes/{node_id}/drain",
        "/v1/runs",
        "/v1/runs/explain",
        "/v1/runs/{run_id}",
        "/v1/runs/{run_id}/cancel",
        "/v1/queues",
        "/v1/tokens/revoke",
    ):
        assert path in paths, path


def test_register_then_list(api: TestClient, files: ControllerFiles, registered: str) -> None:
    """A registered worker appears, ready, in the operator's node list."""
    nodes = api.get("/v1/nodes", headers=auth(files.tokens["operator"])).json()["nodes"]
    assert [(n["node_id"], n["state"]) for n in nodes] == [("lab-micro-1", "ready")]


def test_heartbeat_reports_drain(api: TestClient, files: ControllerFiles, registered: str) -> None:
    """After an operator drains a node, its next heartbeat is told to drain, with who and why."""
    operator = auth(files.tokens["operator"])
    drained = api.post(
        "/v1/nodes/lab-micro-1/drain", json={"reason": "new disk"}, headers=operator
    )
    assert drained.status_code == 200 and drained.json()["state"] == "draining"
    beat = api.post("/v1/nodes/lab-micro-1/heartbeat", json={}, headers=as_worker(files)).json()
    assert beat["draining"] and beat["drain"]["by"] == "operator"
    assert beat["drain"]["reason"] == "new disk"
    api.post("/v1/nodes/lab-micro-1/undrain", headers=operator)
    beat = api.post("/v1/nodes/lab-micro-1/heartbeat", json={}, headers=as_worker(files)).json()
    assert not beat["draining"]


def test_submit_queues_on_the_dispatched_queue(
    api: TestClient, files: ControllerFiles, registered: str, redis_client: redis.Redis
) -> None:
    """A Gemma run is accepted at once with an id, on research-micro, as a Celery message."""
    reply = api.post("/v1/runs", json=RUN, headers=auth(files.tokens["researcher"]))
    assert reply.status_code == 202, reply.text
    body = reply.json()
    assert body["queue"] == "research-micro"
    message = json.loads(redis_client.lindex("research-micro", 0))
    assert message["headers"]["id"] == body["run_id"]
    assert message["headers"]["task"] == "research.run"
    assert message["content-type"] == "application/json"
    status = api.get(f"/v1/runs/{body['run_id']}", headers=auth(files.tokens["researcher"]))
    assert status.json()["state"] == "queued" and status.json()["queue_depth"] == 1


def test_queues_show_depth_and_oldest_wait(
    api: TestClient, files: ControllerFiles, registered: str
) -> None:
    """Two queued runs show as depth 2 on research-micro with a measured wait."""
    for _ in range(2):
        api.post("/v1/runs", json=RUN, headers=auth(files.tokens["researcher"]))
    queues = {
        q["queue"]: q
        for q in api.get("/v1/queues", headers=auth(files.tokens["researcher"])).json()["queues"]
    }
    assert queues["research-micro"]["depth"] == 2
    assert queues["research-micro"]["oldest_wait_s"] >= 0
    assert queues["research-large"] == {
        "queue": "research-large",
        "depth": 0,
        "oldest_wait_s": None,
        "pending": None,
    }


def test_explain_queues_nothing(
    api: TestClient, files: ControllerFiles, registered: str, redis_client: redis.Redis
) -> None:
    """Explain returns the decision and leaves every queue empty."""
    reply = api.post("/v1/runs/explain", json=RUN, headers=auth(files.tokens["researcher"]))
    assert reply.status_code == 200 and reply.json()["queue"] == "research-micro"
    assert redis_client.llen("research-micro") == 0


def test_refused_run_is_409_with_reason(api: TestClient, files: ControllerFiles) -> None:
    """With no worker registered, a Gemma run is refused with why, and nothing is queued."""
    reply = api.post("/v1/runs", json=RUN, headers=auth(files.tokens["researcher"]))
    assert reply.status_code == 409
    error = reply.json()["error"]
    assert "no registered node holding gemma3-270m consumes it" in error["reason"]
    assert error["decision"]["refused"] is True


def test_cancel_a_queued_run(api: TestClient, files: ControllerFiles, registered: str) -> None:
    """A queued run can be cancelled and then reads as cancelled."""
    token = auth(files.tokens["researcher"])
    run_id = api.post("/v1/runs", json=RUN, headers=token).json()["run_id"]
    assert api.post(f"/v1/runs/{run_id}/cancel", headers=token).json()["state"] == "cancelled"
    assert api.get(f"/v1/runs/{run_id}", headers=token).json()["state"] == "cancelled"


def test_deregister_removes_the_node(
    api: TestClient, files: ControllerFiles, registered: str
) -> None:
    """An operator can deregister a node; it is then unknown."""
    operator = auth(files.tokens["operator"])
    assert api.delete("/v1/nodes/lab-micro-1", headers=operator).status_code == 200
    assert api.get("/v1/nodes/lab-micro-1", headers=operator).status_code == 404


# --- refusals: tokens, scopes, bodies ----------------------------------------


def registry_keys(client: redis.Redis) -> list[bytes]:
    return sorted(client.keys("registry:*"))


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({}, 401, "missing bearer token"),
        ({"Authorization": "Basic abc"}, 401, "missing bearer token"),
        ({"Authorization": "Bearer nope"}, 401, "unknown or revoked token"),
    ],
)
def test_registration_without_a_valid_token_changes_nothing(
    api: TestClient,
    redis_client: redis.Redis,
    headers: dict[str, str],
    status: int,
    reason: str,
) -> None:
    """Registration with no, malformed or unknown token is refused and stores nothing."""
    reply = api.post("/v1/nodes/register", json=registration(), headers=headers)
    assert reply.status_code == status
    assert reason in reply.json()["error"]["reason"]
    assert registry_keys(redis_client) == []


def test_researcher_cannot_register_or_drain(
    api: TestClient, files: ControllerFiles, registered: str, redis_client: redis.Redis
) -> None:
    """A researcher's token may not register a node nor drain one."""
    researcher = auth(files.tokens["researcher"])
    before = registry_keys(redis_client)
    reply = api.post("/v1/nodes/register", json=registration("x-1"), headers=researcher)
    assert reply.status_code == 403 and "needs worker" in reply.json()["error"]["reason"]
    reply = api.post("/v1/nodes/lab-micro-1/drain", json={"reason": "x"}, headers=researcher)
    assert reply.status_code == 403
    assert registry_keys(redis_client) == before
    assert api.get("/v1/nodes/lab-micro-1", headers=researcher).json()["state"] == "ready"


def test_worker_token_speaks_only_for_its_node(
    api: TestClient, files: ControllerFiles, redis_client: redis.Redis
) -> None:
    """A worker's token cannot register or heartbeat as another node."""
    reply = api.post(
        "/v1/nodes/register",
        json=registration("lab-small-1"),
        headers=as_worker(files, "lab-micro-1"),
    )
    assert reply.status_code == 403 and registry_keys(redis_client) == []


def test_revoked_worker_token_is_refused(
    api: TestClient, files: ControllerFiles, registered: str, redis_client: redis.Redis
) -> None:
    """After an operator revokes a worker's token, its heartbeats are refused."""
    reply = api.post(
        "/v1/tokens/revoke",
        json={"node_id": "lab-micro-1"},
        headers=auth(files.tokens["operator"]),
    )
    assert reply.status_code == 200
    beat = api.post("/v1/nodes/lab-micro-1/heartbeat", json={}, headers=as_worker(files))
    assert beat.status_code == 401
    again = api.post("/v1/nodes/register", json=registration(), headers=as_worker(files))
    assert again.status_code == 401


def test_researcher_cannot_revoke(api: TestClient, files: ControllerFiles) -> None:
    """Revocation is for operators only."""
    reply = api.post(
        "/v1/tokens/revoke",
        json={"node_id": "lab-micro-1"},
        headers=auth(files.tokens["researcher"]),
    )
    assert reply.status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**RUN, "max_tokens": "many"}, "max_tokens"),
        ({**RUN, "max_tokens": 0}, "max_tokens"),
        ({**RUN, "model": "Bad Name!"}, "model"),
        ({**RUN, "surprise": 1}, "surprise"),
        ({"model": "gemma3-270m", "runtime": "llama_cpp"}, "body"),
        ({**RUN, "prompts": ["a"]}, "body"),
        ({**RUN, "temperature": -1}, "temperature"),
        ({"runtime": "command"}, "body"),
    ],
)
def test_invalid_run_bodies_name_the_field(
    api: TestClient,
    files: ControllerFiles,
    registered: str,
    redis_client: redis.Redis,
    body: dict[str, Any],
    field: str,
) -> None:
    """A malformed run is refused with 422 naming the field, and nothing is queued."""
    reply = api.post("/v1/runs", json=body, headers=auth(files.tokens["researcher"]))
    assert reply.status_code == 422, reply.text
    problems = reply.json()["error"]["problems"]
    assert any(p["field"] == field for p in problems), problems
    assert redis_client.llen("research-micro") == 0


def test_unknown_model_is_refused(
    api: TestClient, files: ControllerFiles, registered: str
) -> None:
    """A run for a model the catalog does not have is refused with 409 and the reason."""
    reply = api.post(
        "/v1/runs", json={**RUN, "model": "llama-70b"}, headers=auth(files.tokens["researcher"])
    )
    assert reply.status_code == 409
    assert "no such model 'llama-70b'" in reply.json()["error"]["reason"]


def test_oversized_body_is_413(
    api: TestClient, files: ControllerFiles, redis_client: redis.Redis
) -> None:
    """A body over the limit is refused before it is parsed."""
    reply = api.post(
        "/v1/runs",
        content=b'{"prompt": "' + b"x" * 70_000 + b'"}',
        headers={**auth(files.tokens["researcher"]), "Content-Type": "application/json"},
    )
    assert reply.status_code == 413
    assert "larger than 65536 bytes" in reply.json()["error"]["reason"]


@pytest.mark.parametrize("path", ["/v1/runs/not-a-run-id", "/v1/nodes/Bad_Node"])
def test_bad_ids_are_422(api: TestClient, files: ControllerFiles, path: str) -> None:
    """Malformed run and node ids are refused with 422, not looked up."""
    reply = api.get(path, headers=auth(files.tokens["operator"]))
    assert reply.status_code == 422


def test_unknown_run_and_node_are_404(api: TestClient, files: ControllerFiles) -> None:
    """Well-formed ids that do not exist are 404 with a reason."""
    token = auth(files.tokens["operator"])
    reply = api.get("/v1/runs/00000000-0000-0000-0000-000000000000", headers=token)
    assert reply.status_code == 404 and "no run" in reply.json()["error"]["reason"]
    assert (
        api.post("/v1/nodes/ghost/drain", json={"reason": "x"}, headers=token).status_code == 404
    )
    beat = api.post("/v1/nodes/ghost/heartbeat", json={}, headers=as_worker(files, "ghost"))
    assert beat.status_code == 404 and "register first" in beat.json()["error"]["reason"]


def test_queued_run_says_why_it_waits(
    api: TestClient, files: ControllerFiles, registered: str
) -> None:
    """A queued run's status gives a pending reason that follows the node's state."""
    researcher, worker = auth(files.tokens["researcher"]), as_worker(files)
    run_id = api.post("/v1/runs", json=RUN, headers=researcher).json()["run_id"]

    def pending() -> dict[str, str]:
        reason: dict[str, str] = api.get(f"/v1/runs/{run_id}", headers=researcher).json()[
            "pending"
        ]
        return reason

    assert pending()["code"] == "Starting"
    api.post("/v1/nodes/lab-micro-1/heartbeat", json={"run_id": "another"}, headers=worker)
    assert pending() == {
        "code": "Resources",
        "text": "all 1 available nodes reading research-micro are busy",
    }
    api.post(
        "/v1/nodes/lab-micro-1/drain", json={"reason": "x"}, headers=auth(files.tokens["operator"])
    )
    assert pending()["code"] == "Unavailable"
    assert "draining (lab-micro-1)" in pending()["text"]
    queues = api.get("/v1/queues", headers=researcher).json()["queues"]
    micro = next(q for q in queues if q["queue"] == "research-micro")
    assert micro["pending"]["code"] == "Unavailable"


def test_submitting_subscribes_to_nothing(
    api: TestClient, files: ControllerFiles, registered: str, redis_client: redis.Redis
) -> None:
    """The controller reads results itself, so publishing a run subscribes to no channel."""
    reply = api.post("/v1/runs", json=RUN, headers=auth(files.tokens["researcher"]))
    assert reply.status_code == 202, reply.text
    commands = {client["cmd"] for client in redis_client.client_list()}
    assert not commands & {"subscribe", "unsubscribe"}, commands


def test_several_api_processes_serve_one_port(
    files: ControllerFiles, redis_service: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """With RESEARCH_API_WORKERS=2 the controller runs two API processes that register,
    heartbeat and refuse a bad setting alike."""
    with controller_service(files, redis_service.url, tmp_path, RESEARCH_API_WORKERS="2") as (
        service,
        url,
    ):
        children = psutil.Process(service.process.pid).children()
        servers = [c for c in children if "resource_tracker" not in " ".join(c.cmdline())]
        assert len(servers) == 2, [c.cmdline() for c in children]
        with httpx.Client(base_url=url, headers=as_worker(files)) as http:
            assert http.post("/v1/nodes/register", json=registration()).status_code == 200
            for _ in range(4):
                beat = http.post("/v1/nodes/lab-micro-1/heartbeat", json={})
                assert beat.status_code == 200, beat.text
    with pytest.raises(ConfigError, match="RESEARCH_API_WORKERS"):
        ControllerSettings.from_env(files.env(redis_service.url, RESEARCH_API_WORKERS="0"))


def test_a_worker_heartbeats_on_one_connection(
    files: ControllerFiles, redis_service: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Heartbeats an interval apart (3 s here) reuse the worker's connection: neither the
    API (keep-alive past two intervals) nor the worker's client closes it in between."""
    with controller_service(
        files, redis_service.url, tmp_path, RESEARCH_HEARTBEAT_INTERVAL_S="3"
    ) as (_, url):
        client = RegistryClient(url, files.worker_token("lab-micro-1"), keep_alive_s=7)
        client.register(registration())
        port = int(url.rsplit(":", 1)[1])

        def local_ports() -> set[int]:
            return {
                c.laddr.port
                for c in psutil.Process().net_connections("tcp")
                if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
            }

        before = local_ports()
        time.sleep(5.5)  # longer than uvicorn's and httpx's default keep-alive, 5 s
        client.heartbeat("lab-micro-1", None, ["research-micro"], [])
        assert local_ports() == before and len(before) == 1
        client.http.close()
