"""What this machine is and holds, as a worker reports it to the registry."""

from __future__ import annotations

import hashlib
import logging
import platform
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import psutil

from controller import __version__
from controller.catalog import Catalog, ModelEntry

__all__ = ["gpu_memory_gb", "present_models", "registration", "sha256_of"]

logger = logging.getLogger(__name__)
SIDECAR = ".sha256"
NVIDIA_SMI_TIMEOUT_S = 10.0


def gpu_memory_gb() -> float:
    """Return the total memory of this machine's NVIDIA GPUs in GiB, or 0.

    Asks ``nvidia-smi`` when it is installed; any failure counts as no GPU.
    """
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return 0.0
    try:
        out = subprocess.run(
            [binary, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("gpu: nvidia-smi failed, reporting no GPU: %s", exc)
        return 0.0
    try:
        mebibytes = [float(line) for line in out.splitlines() if line.strip()]
    except ValueError:
        logger.warning("gpu: nvidia-smi printed %r, not MiB per GPU; reporting no GPU", out)
        return 0.0
    return round(sum(mebibytes) / 1024, 2)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(entry: ModelEntry, path: Path) -> bool:
    """True if ``path`` holds ``entry``: its sidecar checksum (written when the
    file was pulled and verified) matches, or, without one, its content does."""
    sidecar = path.with_name(path.name + SIDECAR)
    if sidecar.is_file():
        return sidecar.read_text(encoding="utf-8").split()[0] == entry.sha256
    if path.stat().st_size != entry.size_bytes:
        return False
    return sha256_of(path) == entry.sha256


def present_models(catalog: Catalog, models_dir: Path) -> dict[str, str]:
    """Return ``{name: sha256}`` for every catalog model present and verified."""
    found = {}
    for entry in catalog.values():
        path = models_dir / entry.file
        if path.is_file() and _verified(entry, path):
            found[entry.name] = entry.sha256
        elif path.exists():
            logger.warning(
                "model %s: %s does not match its checksum; not reported", entry.name, path
            )
    return found


def registration(
    node_id: str,
    tier: str,
    queues: list[str],
    catalog: Catalog,
    models_dir: Path,
    address: str = "",
) -> dict[str, Any]:
    """Return the registration body for this machine (see controller.schemas)."""
    gpu_gb = gpu_memory_gb()
    return {
        "node_id": node_id,
        "tier": tier,
        "queues": queues,
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 2),
        "cpus": psutil.cpu_count(logical=True) or 1,
        "arch": platform.machine(),
        "gpu": gpu_gb > 0,
        "gpu_memory_gb": gpu_gb,
        "models": present_models(catalog, models_dir),
        "version": __version__,
        "address": address,
        "hostname": socket.gethostname(),
    }
