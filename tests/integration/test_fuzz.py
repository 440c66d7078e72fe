"""Fuzz the controller API from its own OpenAPI description, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.integration.cluster import Cluster, cluster

pytestmark = pytest.mark.slow
EXAMPLES_PER_OPERATION = 120


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Cluster]:
    with cluster(tmp_path_factory.mktemp("fuzz"), models_dir) as running:
        running.start_worker("w-micro", "micro")
        yield running


def fuzz_operation(operation: Any, headers: dict[str, str], calls: list[int]) -> None:
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        calls.append(1)
        # Some rules span fields (prompt or prompts; argv for a command run) and
        # cannot be said in the schema, so the API rightly refuses some
        # schema-valid bodies with 422; every other check applies.
        case.call_and_validate(
            headers=headers, timeout=30, excluded_checks=[positive_data_acceptance]
        )

    check()


@pytest.mark.parametrize("who", ["operator", "researcher"])
def test_no_server_error_and_no_schema_violation(lab: Cluster, who: str) -> None:
    """Every operation, fuzzed with generated requests, answers within its documented
    statuses and schemas and never with a server error."""
    schema = schemathesis.openapi.from_url(f"{lab.api_url}/openapi.json")
    headers = {"Authorization": f"Bearer {lab.files.tokens[who]}"}
    calls: list[int] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        fuzz_operation(operation, headers, calls)
    print(
        f"{who}: {len(calls)} generated requests over {len(operations)} operations, "
        "no server error, no schema violation"
    )
    assert len(calls) >= 1000
    assert lab.node("w-micro")["state"] in ("ready", "busy", "draining")
