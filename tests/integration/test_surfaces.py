"""The researcher's and operator's surfaces against a running cluster:
research-submit, labctl, controller.submit and the research_submit module."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller import submit as submit_api
from controller.submit import ConfigMissing, RunFailed, RunRefused
from tests.integration.cluster import Cluster, cluster

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[2]
BIN = ROOT / ".venv" / "bin"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Cluster]:
    with cluster(tmp_path_factory.mktemp("surfaces"), models_dir) as running:
        running.start_worker("w-micro", "micro", RESEARCH_COMMAND_ALLOW="/bin/echo")
        yield running


def command(
    lab: Cluster, *argv: str, who: str = "researcher", **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "LAB_API_URL": lab.api_url,
        "LAB_TOKEN": lab.files.tokens[who],
        "LAB_CONFIG": "/nonexistent",
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        **env,
    }
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# --- research-submit ---------------------------------------------------------


def test_submit_prints_run_id_and_queue_at_once(lab: Cluster) -> None:
    """Without --wait, research-submit prints the run id and queue and exits 0."""
    result = command(
        lab, "research-submit", "--model", "gemma3-270m", "--prompt", "Hi", "--max-tokens", "4"
    )
    assert result.returncode == 0, result.stderr
    run_id, _, queue = result.stdout.strip().partition(" queued on ")
    assert len(run_id) == 36 and queue == "research-micro"
    lab.client().wait(run_id, timeout_s=120)


def test_submit_wait_shows_progress_and_result(lab: Cluster) -> None:
    """With --wait, progress goes to stderr and the output and telemetry to stdout."""
    result = command(
        lab,
        "research-submit",
        "--model",
        "gemma3-270m",
        "--prompt",
        "Once upon a time",
        "--max-tokens",
        "8",
        "--wait",
    )
    assert result.returncode == 0, result.stderr
    assert "queued on research-micro" in result.stderr or "running on" in result.stderr
    assert ": succeeded on w-micro" in result.stdout
    assert "output[0]: " in result.stdout and "telemetry: " in result.stdout


def test_submit_json_is_one_document(lab: Cluster) -> None:
    """--wait --json prints exactly one JSON document: the final status with its result."""
    result = command(
        lab,
        "research-submit",
        "--model",
        "gemma3-270m",
        "--prompt",
        "Hi",
        "--max-tokens",
        "4",
        "--wait",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["state"] == "succeeded" and document["result"]["tokens"]["completion"] > 0


def test_submit_exit_codes_distinguish_refused_and_failed(lab: Cluster) -> None:
    """Refused exits 3, failed exits 1, bad configuration exits 2."""
    refused = command(lab, "research-submit", "--model", "no-such-model", "--prompt", "x")
    assert refused.returncode == 3 and "no such model 'no-such-model'" in refused.stderr
    failed = command(lab, "research-submit", "--argv", "/bin/false", "--wait")
    assert failed.returncode == 1 and "CommandNotAllowed" in failed.stdout
    unset = command(lab, "research-submit", "--runtime", "noop", LAB_API_URL="")
    assert unset.returncode == 2 and "LAB_API_URL" in unset.stderr


def test_submit_explain_queues_nothing(lab: Cluster) -> None:
    """--explain shows the decision, tier by tier, and queues nothing."""
    result = command(
        lab, "research-submit", "--model", "gemma3-270m", "--prompt", "x", "--explain"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("would queue on research-micro")
    assert lab.redis_client().llen("research-micro") == 0


def test_config_file_is_read(lab: Cluster, tmp_path: Path) -> None:
    """LAB_API_URL and LAB_TOKEN can come from the file $LAB_CONFIG names."""
    config = tmp_path / "client.env"
    config.write_text(
        f"export LAB_API_URL={lab.api_url}\nLAB_TOKEN='{lab.files.tokens['researcher']}'\n"
    )
    result = command(
        lab,
        "research-submit",
        "--runtime",
        "noop",
        "--wait",
        LAB_API_URL="",
        LAB_TOKEN="",
        LAB_CONFIG=str(config),
    )
    assert result.returncode == 0, result.stderr


# --- controller.submit -------------------------------------------------------


def test_python_api_submit_wait_result(lab: Cluster) -> None:
    """controller.submit returns a run id at once, reports progress, then the result."""
    client = submit_api.Client(lab.api_url, lab.files.tokens["researcher"])
    run = client.submit("gemma3-270m", prompts=["One", "Two"], max_tokens=4)
    seen: list[str] = []
    final = client.wait(run.run_id, timeout_s=120, progress=lambda s: seen.append(s["state"]))
    assert final["state"] == "succeeded" and len(final["result"]["output"]) == 2
    assert seen[-1] == "succeeded" and len(seen) >= 2


def test_python_api_errors(lab: Cluster) -> None:
    """Refusals, failures and missing configuration raise their own exceptions."""
    client = submit_api.Client(lab.api_url, lab.files.tokens["researcher"])
    with pytest.raises(RunRefused) as refused:
        client.submit("no-such-model", "x")
    assert refused.value.decision["refused"] is True
    run = client.submit(argv=["/bin/false"])
    with pytest.raises(RunFailed, match=r"not allowed on this node"):
        client.result(run.run_id, timeout_s=60)
    with pytest.raises(ConfigMissing, match="LAB_API_URL and LAB_TOKEN not set"):
        submit_api.ClientConfig.resolve(env={"LAB_CONFIG": "/nonexistent"})


# --- labctl ------------------------------------------------------------------


def test_labctl_nodes_and_queues(lab: Cluster) -> None:
    """labctl shows the node with tier and state, and every queue's depth."""
    nodes = command(lab, "labctl", "nodes", who="operator")
    assert nodes.returncode == 0, nodes.stderr
    header, row = nodes.stdout.splitlines()[:2]
    assert header.split()[:3] == ["NODE", "TIER", "STATE"]
    assert row.split()[:3] == ["w-micro", "micro", "ready"]
    queues = json.loads(command(lab, "labctl", "--json", "queues").stdout)
    assert {q["queue"] for q in queues} >= {"research-micro", "research-any"}


def test_labctl_drain_needs_an_operator(lab: Cluster) -> None:
    """A researcher's labctl drain is refused; an operator's drains and undrains."""
    refused = command(lab, "labctl", "drain", "w-micro", "--reason", "x")
    assert refused.returncode == 1 and "may not do this" in refused.stderr
    drained = command(lab, "labctl", "drain", "w-micro", "--reason", "disk swap", who="operator")
    assert drained.stdout.strip() == "w-micro: draining"
    shown = command(lab, "labctl", "nodes", who="operator").stdout
    assert "drained by operator: disk swap" in shown
    assert command(lab, "labctl", "undrain", "w-micro", who="operator").returncode == 0
    lab.wait_for_node("w-micro", "ready")


def test_labctl_revoke_needs_an_operator(lab: Cluster) -> None:
    """labctl revoke refuses a researcher; an operator's revokes a node's token."""
    refused = command(lab, "labctl", "revoke", "ghost-1")
    assert refused.returncode == 1 and "may not do this" in refused.stderr
    revoked = command(lab, "labctl", "revoke", "ghost-1", who="operator")
    assert revoked.returncode == 0 and "ghost-1: token revoked" in revoked.stdout


def test_labctl_run_and_cancel(lab: Cluster) -> None:
    """labctl run shows a finished run's output; labctl cancel cancels a queued one."""
    client = lab.client()
    run = client.submit(runtime="noop")
    client.wait(run.run_id, timeout_s=60)
    shown = command(lab, "labctl", "run", run.run_id)
    assert f"run {run.run_id}: succeeded on w-micro" in shown.stdout
    sleeper = client.submit(runtime="noop", sleep_s=20)
    lab.wait_running("w-micro", sleeper.run_id)
    cancelled = command(lab, "labctl", "cancel", sleeper.run_id)
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
    assert client.wait(sleeper.run_id, timeout_s=30)["state"] == "cancelled"


# --- the research_submit Ansible module ---------------------------------------

PLAYBOOK = """
- name: Run a small campaign
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Submit a Gemma run and wait
      research_submit:
        model: gemma3-270m
        prompt: The sky is
        max_tokens: 4
        labels: {campaign: test}
      register: answer

    - name: Check the answer
      ansible.builtin.assert:
        that:
          - answer.changed
          - answer.state == 'succeeded'
          - answer.queue == 'research-micro'
          - answer.result.tokens.completion > 0
          - answer.result.telemetry.series | length > 0
"""


def playbook(
    lab: Cluster, tmp_path: Path, text: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "campaign.yml"
    path.write_text(text)
    return command(lab, "ansible-playbook", "-i", "localhost,", str(path), *args, **env)


def test_module_submits_waits_and_returns_the_result(lab: Cluster, tmp_path: Path) -> None:
    """A playbook task with research_submit runs Gemma and returns its result."""
    result = playbook(lab, tmp_path, PLAYBOOK)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "changed=1" in result.stdout and "failed=0" in result.stdout


def test_module_check_mode_only_explains(lab: Cluster, tmp_path: Path) -> None:
    """In check mode the module queues nothing and returns the dispatcher's explanation."""
    text = (
        PLAYBOOK.split("    - name: Check the answer", maxsplit=1)[0]
        + """
    - name: Check the explanation
      ansible.builtin.assert:
        that:
          - answer.queue == 'research-micro'
          - answer.decision.considered | length > 0
          - answer.run_id is not defined
"""
    )
    before = lab.redis_client().llen("research-micro")
    result = playbook(lab, tmp_path, text, "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert lab.redis_client().llen("research-micro") == before


def test_module_refusal_fails_with_reason(lab: Cluster, tmp_path: Path) -> None:
    """A refused run fails the task with the dispatcher's reason, and the token stays secret."""
    text = PLAYBOOK.replace("model: gemma3-270m", "model: no-such-model")
    result = playbook(lab, tmp_path, text, "-vvv")
    assert result.returncode != 0
    assert "refused: no such model 'no-such-model'" in result.stdout
    assert lab.files.tokens["researcher"] not in result.stdout + result.stderr
