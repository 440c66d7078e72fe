"""Tests of worker.fingerprint: GPU memory from nvidia-smi, models on disk."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from controller.catalog import Catalog, ModelEntry
from worker.fingerprint import SIDECAR, gpu_memory_gb, present_models


def _nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """Put an ``nvidia-smi`` program running ``script`` first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "nvidia-smi"
    program.write_text(f"#!/bin/sh\n{script}\n", encoding="utf-8")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")


def test_no_nvidia_smi_means_no_gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpu_memory_gb() == 0.0


def test_gpu_memory_is_the_sum_over_gpus_in_gib(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits: MiB per line
    _nvidia_smi(tmp_path, monkeypatch, "printf '81559\\n81559\\n'")
    assert gpu_memory_gb() == round(2 * 81559 / 1024, 2)


@pytest.mark.parametrize(
    "script",
    [
        "echo 'NVIDIA-SMI has failed because it could not communicate with the driver'; exit 9",
        "echo '[N/A]'",
        "exec sleep 30",  # exec: the timeout kills the holder of the pipe
    ],
    ids=["fails", "not-a-number", "hangs"],
)
def test_a_broken_nvidia_smi_counts_as_no_gpu(
    script: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr("worker.fingerprint.NVIDIA_SMI_TIMEOUT_S", 0.5)
    _nvidia_smi(tmp_path, monkeypatch, script)
    with caplog.at_level(logging.WARNING, logger="worker.fingerprint"):
        assert gpu_memory_gb() == 0.0
    assert "reporting no GPU" in caplog.text


def _entry(name: str, content: bytes) -> ModelEntry:
    return ModelEntry(
        name=name,
        file=f"{name}.gguf",
        url=f"http://mirror.invalid/{name}.gguf",
        sha256=hashlib.sha256(content).hexdigest(),
        size_bytes=len(content),
        ram_gb=1.0,
    )


def test_only_models_that_match_their_checksum_are_reported(tmp_path: Path) -> None:
    good, corrupt, absent = b"weights", b"other weights", b"never pulled"
    catalog = Catalog(
        {
            "good": _entry("good", good),
            "corrupt": _entry("corrupt", corrupt),
            "absent": _entry("absent", absent),
        }
    )
    (tmp_path / "good.gguf").write_bytes(good)
    (tmp_path / "corrupt.gguf").write_bytes(b"OTHER weights")  # same size, other bytes

    assert present_models(catalog, tmp_path) == {"good": catalog["good"].sha256}


def test_a_sidecar_checksum_is_trusted_and_a_stale_one_is_not(tmp_path: Path) -> None:
    content = b"weights"
    entry = _entry("m", content)
    catalog = Catalog({"m": entry})
    model = tmp_path / "m.gguf"
    model.write_bytes(b"a file the pull verified, not re-read")
    sidecar = model.with_name(model.name + SIDECAR)

    sidecar.write_text(f"{entry.sha256}  m.gguf\n", encoding="utf-8")
    assert present_models(catalog, tmp_path) == {"m": entry.sha256}

    sidecar.write_text(f"{'0' * 64}  m.gguf\n", encoding="utf-8")
    assert present_models(catalog, tmp_path) == {}
