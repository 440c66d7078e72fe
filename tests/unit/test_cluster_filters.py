"""The filters that derive worker tokens and a node's models, and the
wheelhouse digest lookup."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from controller.auth import TokenBook

sys.path.insert(0, str(Path(__file__).parents[2] / "filter_plugins"))
sys.path.insert(0, str(Path(__file__).parents[2] / "roles" / "base" / "lookup_plugins"))
from cluster import FilterModule
from wheelhouse_digest import digest

FILTERS = FilterModule().filters()
SECRET = "s" * 40
CATALOG = {
    "tiny": {"ram_gb": 0.6},
    "mid": {"ram_gb": 5.0},
    "big": {"ram_gb": 20.0},
    "vision": {"ram_gb": 4.0, "gpu": True, "gpu_memory_gb": 8},
}


def test_worker_token_is_accepted_by_the_controller(tmp_path: Path) -> None:
    """A token from worker_token identifies its node in the controller's TokenBook."""
    (tmp_path / "tokens.yml").write_text("tokens: []\n")
    (tmp_path / "secret").write_text(SECRET + "\n")
    book = TokenBook.load(tmp_path / "tokens.yml", tmp_path / "secret", None)
    identity = book.identify(FILTERS["worker_token"](SECRET, "nuc-01"))
    assert identity is not None
    assert identity.node_id == "nuc-01"


def test_worker_token_refuses_a_short_secret() -> None:
    """A secret under 32 characters is refused, naming the filter."""
    with pytest.raises(AnsibleFilterError, match="worker_token: the worker secret"):
        FILTERS["worker_token"]("short", "nuc-01")


@pytest.mark.parametrize(
    ("queues", "expected"),
    [
        (["research-micro", "research-any"], ["tiny"]),
        (["research-small", "research-micro", "research-any"], ["mid", "tiny"]),
        (["research-gpu", "research-large"], ["big", "vision"]),
        ([], []),
    ],
)
def test_catalog_for_queues_picks_the_models_of_those_queues(
    queues: list[str], expected: list[str]
) -> None:
    """catalog_for_queues returns the models whose queue is among the node's."""
    assert FILTERS["catalog_for_queues"](CATALOG, queues) == expected


def test_catalog_for_queues_names_a_bad_model() -> None:
    """A model whose needs are not a mapping is named in the error."""
    with pytest.raises(AnsibleFilterError, match="model 'bad'"):
        FILTERS["catalog_for_queues"]({"bad": 3}, ["research-any"])


def test_wheelhouse_digest_follows_content_and_ignores_caches(tmp_path: Path) -> None:
    """The digest changes with a file's content, not with __pycache__ or a
    missing optional directory."""
    package = tmp_path / "pkg"
    (package / "__pycache__").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    first = digest([str(package), str(tmp_path / "absent")])
    (package / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert digest([str(package)]) == first
    (package / "a.py").write_text("x = 2\n")
    assert digest([str(package)]) != first
