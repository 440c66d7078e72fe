"""The benchmarks' report: one table line per recorded row, nothing hidden."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.report import load, render


def test_report_lists_every_row_and_what_is_pending(tmp_path: Path) -> None:
    """The report has one table line per recorded row, and says provisioning is pending."""
    for name, met in (("dispatch", True), ("scale", False)):
        rows = [
            {
                "benchmark": name,
                "what": f"{name} row",
                "measured": "1 ms",
                "reference": "2 ms",
                "ratio": 0.5,
                "aim": "<= 1x",
                "met": met,
                "command": f".venv/bin/python benchmarks/{name}.py",
            }
        ]
        document = {"benchmark": name, "machine": "m", "date": "d", "rows": rows, "notes": []}
        (tmp_path / f"{name}.json").write_text(json.dumps(document))
    text = render(load(tmp_path))
    assert "| dispatch | dispatch row | 1 ms | 2 ms | 0.5 | <= 1x | yes | m |" in text
    assert "| scale | scale row | 1 ms | 2 ms | 0.5 | <= 1x | **no** | m |" in text
    assert "provisioning: not recorded yet" in text


def test_report_refuses_a_results_file_without_rows(tmp_path: Path) -> None:
    """A results file with no rows is an error naming the file, not an empty section."""
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"benchmark": "broken", "machine": "m", "date": "d", "rows": []}))
    with pytest.raises(ValueError, match=r"broken\.json: rows"):
        load(tmp_path)
