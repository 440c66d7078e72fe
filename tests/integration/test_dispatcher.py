"""The dispatcher against a live registry in Redis, and against a brute-force oracle."""

from __future__ import annotations

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.catalog import Catalog
from controller.dispatcher import Dispatcher
from controller.registry import HealthPolicy, NodeCapabilities, Registry
from controller.tiers import tier_model

TIERS = tier_model()
POLICY = HealthPolicy(interval_s=1, ttl_s=3, grace_s=3)
NOW = 2_000_000.0
SHA = "c" * 64


def entry(ram_gb: float, gpu: bool = False, gpu_memory_gb: float = 0.0) -> dict[str, object]:
    fields: dict[str, object] = {
        "file": "m.gguf",
        "url": "http://mirror/m.gguf",
        "sha256": SHA,
        "size_bytes": 1,
        "ram_gb": ram_gb,
        "gpu": gpu,
    }
    if gpu:
        fields["gpu_memory_gb"] = gpu_memory_gb
    return fields


CATALOG = Catalog.from_mapping(
    {
        "tiny": entry(0.5),
        "mid": entry(4.0),
        "big": entry(14.0),
        "huge": entry(40.0),
        "vision": entry(8.0, gpu=True, gpu_memory_gb=16),
    }
)


def node(
    registry: Registry,
    node_id: str,
    tier: str,
    models: list[str],
    gpu: bool = False,
    age: float = 0.0,
    draining: bool = False,
    gpu_memory_gb: float = 24.0,
) -> None:
    registry.register(
        NodeCapabilities(
            node_id=node_id,
            tier=tier,
            queues=TIERS.node_queues(tier, gpu),
            ram_gb=1,
            cpus=1,
            arch="x86_64",
            gpu=gpu,
            gpu_memory_gb=gpu_memory_gb if gpu else 0.0,
            models={m: SHA for m in models},
        ),
        now=NOW - age,
    )
    if draining:
        registry.drain(node_id, by="op", reason="maintenance")


@pytest.fixture
def registry(redis_client: redis.Redis) -> Registry:
    return Registry(redis_client, POLICY)


@pytest.fixture
def dispatcher(registry: Registry) -> Dispatcher:
    return Dispatcher(registry, CATALOG)


@pytest.fixture
def fleet(registry: Registry) -> Registry:
    node(registry, "pi-1", "micro", ["tiny"])
    node(registry, "nuc-1", "small", ["tiny", "mid"])
    node(registry, "ws-1", "medium", ["tiny", "mid", "big"])
    node(registry, "gpu-1", "large", ["tiny", "mid", "big", "vision"], gpu=True)
    return registry


@pytest.mark.parametrize(
    ("model", "ram_gb", "gpu", "queue"),
    [
        ("tiny", 0, False, "research-micro"),
        ("mid", 0, False, "research-small"),
        ("big", 0, False, "research-large"),
        ("vision", 0, False, "research-gpu"),
        (None, 0, False, "research-any"),
        (None, 10, False, "research-medium"),
        ("tiny", 7, False, "research-medium"),
    ],
)
def test_run_goes_to_the_smallest_tier_that_can_serve_it(
    fleet: Registry,
    dispatcher: Dispatcher,
    model: str | None,
    ram_gb: float,
    gpu: bool,
    queue: str,
) -> None:
    """Each kind of request lands on the queue of the smallest sufficient tier."""
    decision = dispatcher.decide(model, ram_gb, gpu, now=NOW)
    assert decision.queue == queue, decision.reason


def test_unknown_model_is_refused_naming_the_catalog(dispatcher: Dispatcher) -> None:
    """A model not in the catalog is refused and the known ones are listed."""
    decision = dispatcher.decide("llama-70b", now=NOW)
    assert decision.refused
    assert decision.reason == (
        "no such model 'llama-70b'; the catalog has: big, huge, mid, tiny, vision"
    )


def test_model_needing_more_than_any_tier_is_refused(
    fleet: Registry, dispatcher: Dispatcher
) -> None:
    """A 40 GB model cannot be placed: the largest tier guarantees 24 GB."""
    decision = dispatcher.decide("huge", now=NOW)
    assert decision.refused
    assert "needs more RAM than any tier guarantees" in decision.reason
    assert "guarantees 24.0 GB" in decision.reason


def test_every_capable_node_draining_or_lost_is_named(
    registry: Registry, dispatcher: Dispatcher
) -> None:
    """When the only nodes that could serve are draining or lost, the refusal names them."""
    node(registry, "nuc-1", "small", ["mid"], draining=True)
    node(registry, "nuc-2", "small", ["mid"], age=60)
    decision = dispatcher.decide("mid", now=NOW)
    assert decision.refused
    assert "draining (nuc-1)" in decision.reason and "lost (nuc-2)" in decision.reason


def test_larger_node_serves_a_smaller_tier_queue(
    registry: Registry, dispatcher: Dispatcher
) -> None:
    """With no micro node, a micro model still goes to research-micro, which a small node reads."""
    node(registry, "nuc-1", "small", ["tiny"])
    assert dispatcher.decide("tiny", now=NOW).queue == "research-micro"


def test_tier_passed_when_no_node_holds_the_model(
    registry: Registry, dispatcher: Dispatcher
) -> None:
    """If only a medium node holds a small-tier model, the run goes to research-medium."""
    node(registry, "nuc-1", "small", [])
    node(registry, "ws-1", "medium", ["mid"], age=0)
    registry.redis.srem("registry:queue:research-small", "ws-1")
    decision = dispatcher.decide("mid", now=NOW)
    assert decision.queue == "research-medium"


def test_gpu_memory_too_small_is_refused(registry: Registry, dispatcher: Dispatcher) -> None:
    """A GPU model needing 16 GB is refused when the only GPU has 8 GB."""
    node(registry, "gpu-1", "large", ["vision"], gpu=True, gpu_memory_gb=8)
    decision = dispatcher.decide("vision", now=NOW)
    assert decision.refused and "16.0 GB of GPU memory" in decision.reason


def test_one_available_node_among_hundreds_is_found(
    registry: Registry, dispatcher: Dispatcher
) -> None:
    """With 400 micro nodes draining and one not, a tiny model still goes to micro."""
    for index in range(400):
        node(registry, f"pi-{index:03d}", "micro", ["tiny"], draining=True)
    node(registry, "pi-ok", "micro", ["tiny"])
    decision = dispatcher.decide("tiny", now=NOW)
    assert decision.queue == "research-micro"
    assert decision.checks[0].examples["available"] == ["pi-ok"]


def test_gpu_memory_fit_is_found_among_hundreds(
    registry: Registry, dispatcher: Dispatcher
) -> None:
    """Among 300 GPU nodes with 8 GB, the one with 24 GB takes a 16 GB model; without it,
    the run is refused for GPU memory with every node counted."""
    for index in range(300):
        node(registry, f"gpu-{index:03d}", "large", ["vision"], gpu=True, gpu_memory_gb=8)
    refused = dispatcher.decide("vision", now=NOW)
    assert refused.refused and "16.0 GB of GPU memory" in refused.reason
    assert refused.checks[0].counts["available"] == 300
    node(registry, "gpu-big", "large", ["vision"], gpu=True, gpu_memory_gb=24)
    assert dispatcher.decide("vision", now=NOW).queue == "research-gpu"


def test_explain_shows_every_tier_considered(fleet: Registry, dispatcher: Dispatcher) -> None:
    """Explaining a 4 GB model shows micro passed over for size and small taken."""
    decision = dispatcher.decide("mid", explain=True, now=NOW).as_dict()
    considered = [(c["queue"], c["taken"]) for c in decision["considered"]]
    assert considered == [("research-micro", False), ("research-small", True)]
    assert "guarantees 1.5 GB and the run needs 4.0 GB" in decision["considered"][0]["reason"]
    assert decision["considered"][1]["counts"]["available"] == 3


def test_explain_queues_nothing(fleet: Registry, dispatcher: Dispatcher) -> None:
    """An explanation writes nothing to Redis."""
    before = sorted(fleet.redis.keys())
    dispatcher.decide("big", explain=True, now=NOW)
    assert sorted(fleet.redis.keys()) == before


# --- property test against a brute-force oracle ------------------------------

MODELS = ["tiny", "mid", "big", "huge", "vision"]
node_strategy = st.tuples(
    st.sampled_from(TIERS.names),
    st.lists(st.sampled_from(MODELS), unique=True),
    st.booleans(),  # gpu
    st.sampled_from(["fresh", "stale", "lost", "draining", "unhealthy"]),
)
request_strategy = st.tuples(
    st.one_of(st.none(), st.sampled_from([*MODELS, "unknown"])),
    st.sampled_from([0.0, 1.0, 3.0, 7.0, 13.0, 30.0]),
    st.booleans(),
)


def oracle(
    nodes: list[tuple[str, list[str], bool, str]], model: str | None, ram: float, gpu: bool
) -> str | None:
    """Try every queue in size order; take the first some available node could serve."""
    if model is not None and model not in CATALOG:
        return None
    entry = CATALOG.get(model) if model else None
    need = max(ram, entry.ram_gb) if entry else ram
    gpu = gpu or bool(entry and entry.gpu)

    def available(tier: str, models: list[str], has_gpu: bool, state: str, queue: str) -> bool:
        return (
            state == "fresh"
            and queue in TIERS.node_queues(tier, has_gpu)
            and (entry is None or entry.name in models)
            and (not gpu or entry is None or not entry.gpu_memory_gb or has_gpu)
        )

    if gpu:
        queues = [TIERS.gpu_queue]
    elif entry is None and need <= 0:
        queues = [TIERS.any_queue]
    else:
        queues = [t.queue for t in TIERS.tiers if t.min_ram_gb >= need]
    for queue in queues:
        if any(available(*n, queue) for n in nodes):
            return queue
    return None


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(node_strategy, max_size=8), request_strategy)
def test_dispatcher_matches_oracle(
    redis_client: redis.Redis,
    nodes: list[tuple[str, list[str], bool, str]],
    request: tuple[str | None, float, bool],
) -> None:
    """Over random fleets and requests, the dispatcher picks what trying every queue picks."""
    redis_client.flushall()
    registry = Registry(redis_client, POLICY)
    for index, (tier, models, has_gpu, state) in enumerate(nodes):
        node_id = f"n-{index}"
        age = {"stale": 4.0, "lost": 60.0}.get(state, 0.0)
        node(registry, node_id, tier, models, gpu=has_gpu, age=age, draining=state == "draining")
        if state == "unhealthy":
            registry.heartbeat(node_id, problems=["not consuming any queue"], now=NOW)
    decision = Dispatcher(registry, CATALOG).decide(*request, now=NOW)
    assert decision.queue == oracle(nodes, *request), decision.reason
