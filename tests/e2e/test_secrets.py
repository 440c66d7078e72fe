"""No secret of the cluster leaks: not in Ansible's output at the highest
verbosity, not in the services' logs or a run's result, not in a file other
users on a host can read."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from controller.auth import worker_token
from lab.provision import REPO_ROOT
from tests.e2e.cluster import Cluster

pytestmark = [pytest.mark.lab, pytest.mark.slow]
HOSTS = ("lab-controller", "lab-micro-1", "lab-small-1")


def secrets(cluster: Cluster) -> dict[str, str]:
    """Every secret of the lab: the generated files, and each worker's derived token."""
    found = {
        path.name: path.read_text(encoding="utf-8").split()[0]
        for path in cluster.lab.layout.secrets_dir.iterdir()
        if path.is_file()
    }
    worker_secret = next(v for k, v in found.items() if "worker" in k and "secret" in k)
    for host in HOSTS[1:]:
        found[f"token of {host}"] = worker_token(worker_secret.encode(), host)
    assert len(found) >= 7, found.keys()
    return found


def leaks(text: str, cluster: Cluster) -> list[str]:
    return [name for name, value in secrets(cluster).items() if value in text]


def test_no_secret_in_ansible_output_at_the_highest_verbosity(cluster: Cluster) -> None:
    """site.yml run with -vvvv prints none of the secrets it handles."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "ANSIBLE_FACT_CACHING_CONNECTION": str(cluster.lab.layout.facts_dir),
    }
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-vvvv",
            "-i",
            str(cluster.lab.layout.cluster_file),
            "site.yml",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    print(f"\n-vvvv output: {len(output):,} characters, {len(secrets(cluster))} secrets sought")
    assert leaks(output, cluster) == []


def test_no_secret_in_logs_or_run_results(cluster: Cluster) -> None:
    """The controller's and workers' journals and a run's full status hold no secret."""
    client = cluster.researcher()
    run = client.submit(runtime="noop")
    status = client.wait(run.run_id, timeout_s=120)
    assert leaks(repr(status), cluster) == []
    for host in HOSTS:
        journal = cluster.host(host).check_output(
            "journalctl --no-pager -o cat -u research-controller -u research-worker "
            "-u redis-server"
        )
        assert leaks(journal, cluster) == [], host


def test_files_holding_secrets_are_not_readable_by_others(cluster: Cluster) -> None:
    """Every file on a host that contains a secret is closed to other users."""
    checked = 0
    for host_name in HOSTS:
        host = cluster.host(host_name)
        for name, value in secrets(cluster).items():
            found = host.run(
                f"grep -rlF -- {shlex.quote(value)} /etc /opt/research-orchestration "
                "/var/lib/research-orchestration 2>/dev/null"
            )
            for path in found.stdout.split():
                mode = host.file(path).mode
                checked += 1
                assert not mode & 0o004, f"{host_name}:{path} ({oct(mode)}) holds {name}"
    print(f"\n{checked} files holding secrets checked, none readable by others")
    assert checked > 0
