"""Nomad job specifications generated from the tier data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from controller.nomad import job_for_queue, jobs
from controller.tiers import tier_model


def test_one_job_per_queue() -> None:
    """Every cluster queue gets a parameterized batch job of the same name."""
    specs = jobs()
    assert [job["ID"] for job in specs] == list(tier_model().queues)
    assert all(
        job["Type"] == "batch" and job["ParameterizedJob"]["Payload"] == "required"
        for job in specs
    )


def test_small_queue_runs_on_small_or_larger_nodes() -> None:
    """research-small is constrained to small, medium and large nodes."""
    constraint = job_for_queue("research-small")["Constraints"][0]
    assert constraint["RTarget"] == "small,medium,large"
    assert constraint["LTarget"] == "${meta.research_tier}"


def test_gpu_queue_asks_for_a_gpu() -> None:
    """The GPU job requests an NVIDIA GPU device and has no tier constraint."""
    job = job_for_queue("research-gpu")
    task = job["TaskGroups"][0]["Tasks"][0]
    assert task["Resources"]["Devices"] == [{"Name": "nvidia/gpu", "Count": 1}]
    assert "Constraints" not in job


def test_payload_runs_through_the_same_execution(tmp_path: Path) -> None:
    """The command a dispatched job runs executes a spec and prints its result."""
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"run_id": "r-1", "runtime": "noop", "params": {"echo": "hello"}}))
    task = job_for_queue("research-any")["TaskGroups"][0]["Tasks"][0]
    module = task["Config"]["args"][1]
    done = subprocess.run(
        [sys.executable, "-m", module, str(spec)],
        capture_output=True,
        text=True,
        check=False,
        env={"RESEARCH_NODE_ID": "n-1", "RESEARCH_MODELS_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["output"], result["node_id"]) == ("hello", "n-1")


@pytest.mark.skipif(shutil.which("nomad") is None, reason="needs the nomad binary")
def test_nomad_validates_every_job(tmp_path: Path) -> None:
    """nomad job validate accepts each generated job."""
    for job in jobs():
        path = tmp_path / f"{job['ID']}.json"
        path.write_text(json.dumps({"Job": job}))
        done = subprocess.run(
            ["nomad", "job", "validate", "-json", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
