"""The lab, provisioned once with site.yml, for every end-to-end test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab import Lab
from lab.provision import ensure_model, run_playbook, write_env
from tests.e2e.cluster import Cluster


@pytest.fixture(scope="session")
def cluster(running_lab: Lab) -> Iterator[Cluster]:
    """The lab after one site.yml run (which must succeed)."""
    ensure_model(running_lab.layout.cache_dir)
    first = run_playbook(running_lab.layout, "site.yml", say=lambda line: None)
    assert first.ok, first.recap()
    address = running_lab.address("lab-controller")
    write_env(running_lab.layout, address)
    print(f"\nfirst site.yml: {first.wall_s:.1f} s")
    yield Cluster(running_lab, first, address)
