"""Fixtures shared by every test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.models import gemma_model


@pytest.fixture(scope="session")
def gemma_model_path() -> Path:
    """The Gemma 3 270M GGUF file, assembled once and verified by sha256."""
    return gemma_model()
