"""What models, worker and registration leave on a worker machine."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
from testinfra.host import Host
from testinfra.utils.ansible_runner import AnsibleRunner

INVENTORY = AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
testinfra_hosts = ["mol-worker"]
CONFIG = "/etc/research-orchestration"
MODELS = "/var/lib/research-orchestration/models"
GEMMA = "gemma-3-270m-q4_k_m.gguf"
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
SECRETS = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "lab" / "secrets"


def test_worker_runs_one_celery_pool_as_the_project_user(host: Host) -> None:
    """research-worker is enabled and running as research, with the llama
    extra installed, and stops gracefully: KillMode=mixed and a stop timeout
    above the shutdown grace."""
    service = host.service("research-worker")
    assert service.is_running and service.is_enabled
    unit = host.file("/etc/systemd/system/research-worker.service").content_string
    for line in ("User=research", "KillMode=mixed", "TimeoutStopSec=60", "Restart=always"):
        assert line in unit.splitlines(), line
    python = "/opt/research-orchestration/venv/bin/python"
    assert host.run(f"{python} -c 'import llama_cpp'").rc == 0


def test_worker_files_have_tight_modes(host: Host) -> None:
    """Token 0600 research, environment 0600 root, profile readable by the group."""
    expected = {
        "worker.token": ("research", "research", 0o600),
        "worker.env": ("root", "root", 0o600),
        "node/mol-worker.yaml": ("root", "research", 0o640),
    }
    for name, (user, group, mode) in expected.items():
        found = host.file(f"{CONFIG}/{name}")
        assert (found.user, found.group, found.mode) == (user, group, mode), name
    env = host.file(f"{CONFIG}/worker.env").content_string
    assert "RESEARCH_QUEUES=research-micro,research-any" in env.splitlines()


def test_model_is_pulled_with_its_checksum_sidecar(host: Host) -> None:
    """The micro queue's model is present, verified, with its sidecar."""
    model = host.file(f"{MODELS}/{GEMMA}")
    assert model.size == 253113024
    assert model.sha256sum == GEMMA_SHA256
    sidecar = host.file(f"{MODELS}/{GEMMA}.sha256").content_string
    assert sidecar.split()[0] == GEMMA_SHA256


def test_worker_listens_on_no_port(host: Host) -> None:
    """The worker only connects out: sshd is the only listener."""
    sockets = host.socket.get_listening_sockets()
    ports = {socket.rsplit(":", 1)[-1] for socket in sockets if socket.startswith(("tcp", "udp"))}
    assert ports <= {"22"}, sockets


def test_registry_shows_the_worker_ready_with_its_model(host: Host) -> None:
    """The controller's registry lists the worker ready, consuming its
    queues and holding the model."""
    controller = INVENTORY.get_variables("mol-controller")["ansible_host"]
    token = (SECRETS / "operator-token").read_text(encoding="utf-8").strip()
    node = httpx.get(
        f"http://{controller}:8080/v1/nodes/mol-worker",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()
    assert node["state"] == "ready", node
    assert node["consuming"] == ["research-micro", "research-any"], node
    assert node["models"] == {"gemma3-270m": GEMMA_SHA256}, node
