"""What base, redis and controller leave on the controller machine."""

from __future__ import annotations

import os

from testinfra.host import Host
from testinfra.utils.ansible_runner import AnsibleRunner

INVENTORY = AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
testinfra_hosts = INVENTORY.get_hosts("all")
CONFIG = "/etc/research-orchestration"


def _address(host: Host) -> str:
    return str(INVENTORY.get_variables(host.backend.get_hostname())["ansible_host"])


def test_project_is_installed_in_its_virtual_environment(host: Host) -> None:
    """The venv runs the installed controller package, without the llama extra."""
    python = "/opt/research-orchestration/venv/bin/python"
    assert host.run(f"{python} -c 'import controller.api, worker.app'").rc == 0
    assert host.run(f"{python} -c 'import llama_cpp'").rc != 0
    marker = host.file("/opt/research-orchestration/venv/.research-orchestration")
    assert marker.content_string.split()[1] == "research-orchestration"
    assert host.user("research").shell == "/usr/sbin/nologin"
    assert host.file(CONFIG).mode == 0o750


def test_redis_runs_from_debian_bound_to_named_addresses(host: Host) -> None:
    """redis-server is the Debian package, enabled, listening on loopback
    and the machine's address, never on every address."""
    assert host.package("redis-server").is_installed
    service = host.service("redis-server")
    assert service.is_running and service.is_enabled
    assert host.socket("tcp://127.0.0.1:6379").is_listening
    assert host.socket(f"tcp://{_address(host)}:6379").is_listening
    assert not host.socket("tcp://0.0.0.0:6379").is_listening


def test_redis_configuration_keeps_runs(host: Host) -> None:
    """Persistence, no eviction and protected mode are configured."""
    config = host.file("/etc/redis/redis.conf")
    assert config.mode == 0o640
    for line in (
        "appendonly yes",
        "appendfsync everysec",
        "maxmemory-policy noeviction",
        "protected-mode yes",
        "enable-debug-command no",
    ):
        assert line in config.content_string.splitlines(), line


def test_redis_users_hold_digests_only(host: Host) -> None:
    """The ACL file lists the default user off and the two users with
    SHA-256 digests, no clear password, readable by redis only."""
    acl = host.file("/etc/redis/users.acl")
    assert (acl.user, acl.group, acl.mode) == ("redis", "redis", 0o640)
    lines = acl.content_string.splitlines()
    assert lines[0].startswith("user default off resetpass")
    users = {line.split()[1]: line for line in lines}
    assert sorted(users) == ["default", "research-controller", "research-worker"]
    for name in ("research-controller", "research-worker"):
        assert " #" in users[name] and " >" not in users[name]
        assert "-@dangerous" in users[name]


def test_redis_refuses_a_client_without_credentials(host: Host) -> None:
    """An anonymous client gets NOAUTH."""
    reply = host.run("redis-cli -h 127.0.0.1 get research-micro")
    assert "NOAUTH" in reply.stdout + reply.stderr


def test_controller_service_answers_healthz(host: Host) -> None:
    """The controller runs as the project's user, enabled, and answers /healthz."""
    service = host.service("research-controller")
    assert service.is_running and service.is_enabled
    assert host.socket("tcp://0.0.0.0:8080").is_listening
    assert host.process.get(comm="python").user == "research"
    reply = host.check_output("curl -fsS http://127.0.0.1:8080/healthz")
    assert '"status":"ok"' in reply


def test_controller_secrets_have_tight_modes(host: Host) -> None:
    """Environment 0600 root, tokens 0640 root:research with digests only,
    worker secret 0600 research."""
    expected = {
        "controller.env": ("root", "root", 0o600),
        "tokens.yml": ("root", "research", 0o640),
        "worker-secret": ("research", "research", 0o600),
        "catalog.json": ("root", "research", 0o644),
    }
    for name, (user, group, mode) in expected.items():
        found = host.file(f"{CONFIG}/{name}")
        assert (found.user, found.group, found.mode) == (user, group, mode), name
    tokens = host.file(f"{CONFIG}/tokens.yml").content_string
    assert "sha256:" in tokens and "token:" not in tokens


def test_controller_unit_is_hardened(host: Host) -> None:
    """The unit runs as the project's user without privileges."""
    unit = host.file("/etc/systemd/system/research-controller.service").content_string
    for line in ("User=research", "NoNewPrivileges=yes", "ProtectSystem=strict"):
        assert line in unit.splitlines(), line


def test_mirror_serves_the_model_on_its_own_port(host: Host) -> None:
    """nginx serves the model file on the machine's address, port 8081 only."""
    assert host.service("nginx").is_running
    assert host.socket(f"tcp://{_address(host)}:8081").is_listening
    assert not host.socket("tcp://0.0.0.0:80").is_listening
    url = f"http://{_address(host)}:8081/gemma-3-270m-q4_k_m.gguf"
    assert host.check_output(f"curl -fsSI {url} | head -1").endswith("200 OK")
