"""Fixtures of the worker's tests: a node's models directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.models import GEMMA_CATALOG_FILE


@pytest.fixture(scope="session")
def models_dir(gemma_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models directory holding the Gemma file under the catalog's name."""
    directory = tmp_path_factory.mktemp("models")
    (directory / GEMMA_CATALOG_FILE).symlink_to(gemma_model_path)
    return directory
