"""Every benchmark runs, with tiny sizes, and records a well-formed results file.

The benchmarks themselves are not part of the tests (``make bench`` runs them);
this keeps them from rotting as the code they measure changes.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from benchmarks.report import ORDER, check
from tests.services import PYTHON, ROOT

pytestmark = pytest.mark.slow

# The provisioning benchmark needs the lab and a whole site.yml per run; the
# lab's own tests and CI's e2e runs cover what it drives.
BENCHMARKS = [name for name in ORDER if name != "provisioning"]


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_records_a_well_formed_results_file(
    name: str, tmp_path: Path, gemma_model_path: Path
) -> None:
    """``benchmarks/<name>.py --quick`` exits 0 and writes results the report accepts."""
    done = subprocess.run(
        [str(PYTHON), f"benchmarks/{name}.py", "--quick", "--results", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    path = tmp_path / f"{name}.json"
    document = json.loads(path.read_text())
    check(path, document)
    assert document["benchmark"] == name
    for row in document["rows"]:
        assert isinstance(row["ratio"], int | float)
        assert row["command"].startswith(f".venv/bin/python benchmarks/{name}.py --quick")
        assert "--results" not in row["command"]
