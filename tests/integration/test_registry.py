"""The worker registry against a real Redis: registration, heartbeats, health, drain."""

from __future__ import annotations

import threading

import pytest
import redis

from controller.registry import HealthPolicy, NodeCapabilities, NodeState, Registry, UnknownNode

POLICY = HealthPolicy(interval_s=1, ttl_s=3, grace_s=3)
T0 = 1_000_000.0


def caps(node_id: str = "pi-1", tier: str = "micro", **changes: object) -> NodeCapabilities:
    base: dict[str, object] = {
        "node_id": node_id,
        "tier": tier,
        "queues": ["research-micro", "research-any"],
        "ram_gb": 3.8,
        "cpus": 4,
        "arch": "aarch64",
        "models": {"gemma3-270m": "a" * 64},
    }
    return NodeCapabilities(**{**base, **changes})  # type: ignore[arg-type]


@pytest.fixture
def registry(redis_client: redis.Redis) -> Registry:
    return Registry(redis_client, POLICY)


def test_registered_node_is_ready(registry: Registry) -> None:
    """A node that has just registered is ready and listed with its capabilities."""
    registry.register(caps(), now=T0)
    view = registry.node("pi-1", now=T0 + 1)
    assert view.state is NodeState.READY
    assert view.capabilities.models == {"gemma3-270m": "a" * 64}
    assert registry.members("research-micro", "gemma3-270m") == {"pi-1"}


def test_reregistering_updates_without_duplicating(registry: Registry) -> None:
    """A second registration replaces queues and models in every index."""
    registry.register(caps(), now=T0)
    registry.register(
        caps(tier="small", queues=["research-small", "research-micro", "research-any"], models={}),
        now=T0 + 1,
    )
    assert registry.node_ids() == ["pi-1"]
    assert registry.members("research-small") == {"pi-1"}
    assert registry.members("research-micro", "gemma3-270m") == set()
    assert registry.node("pi-1", now=T0 + 1).registered_at == T0


@pytest.mark.parametrize(
    ("age", "state"),
    [
        (0.5, NodeState.READY),
        (3.0, NodeState.READY),
        (3.5, NodeState.STALE),
        (6.0, NodeState.STALE),
        (6.5, NodeState.LOST),
    ],
)
def test_silence_makes_a_node_stale_then_lost(
    registry: Registry, age: float, state: NodeState
) -> None:
    """Past the TTL a silent node is stale; past TTL plus grace it is lost."""
    registry.register(caps(), now=T0)
    assert registry.node("pi-1", now=T0 + age).state is state


def test_heartbeat_brings_a_lost_node_back(registry: Registry) -> None:
    """A lost node is ready again on its next heartbeat."""
    registry.register(caps(), now=T0)
    assert registry.node("pi-1", now=T0 + 60).state is NodeState.LOST
    registry.heartbeat("pi-1", now=T0 + 60)
    assert registry.node("pi-1", now=T0 + 60).state is NodeState.READY


def test_newly_lost_reports_each_loss_once(registry: Registry) -> None:
    """A node that goes silent is reported lost once, and again after it returns and goes."""
    registry.register(caps(), now=T0)
    assert registry.newly_lost(now=T0 + 5) == []
    assert registry.newly_lost(now=T0 + 7) == ["pi-1"]
    assert registry.newly_lost(now=T0 + 8) == []
    registry.heartbeat("pi-1", now=T0 + 8)
    assert registry.newly_lost(now=T0 + 15) == ["pi-1"]


def test_running_node_is_busy(registry: Registry) -> None:
    """A heartbeat naming a run makes the node busy; one without makes it ready."""
    registry.register(caps(), now=T0)
    registry.heartbeat("pi-1", run_id="r-1", now=T0 + 1)
    assert registry.node("pi-1", now=T0 + 1).state is NodeState.BUSY
    registry.heartbeat("pi-1", now=T0 + 2)
    assert registry.node("pi-1", now=T0 + 2).state is NodeState.READY


def test_heartbeat_of_unknown_node_is_refused(registry: Registry) -> None:
    """A node that never registered cannot heartbeat and is not created by trying."""
    with pytest.raises(UnknownNode):
        registry.heartbeat("ghost", now=T0)
    assert registry.node_ids() == []


def test_drain_records_who_and_why_and_survives_reregistration(registry: Registry) -> None:
    """A drain keeps its author and reason, shows in heartbeats, and outlives a restart."""
    registry.register(caps(), now=T0)
    registry.drain("pi-1", by="alice", reason="replace SD card", now=T0)
    assert registry.heartbeat("pi-1", now=T0 + 1) == {
        "by": "alice",
        "reason": "replace SD card",
        "at": T0,
    }
    assert registry.register(caps(), now=T0 + 2).draining is True
    view = registry.node("pi-1", now=T0 + 2)
    assert view.state is NodeState.DRAINING and view.drain is not None
    registry.undrain("pi-1")
    assert registry.node("pi-1", now=T0 + 2).state is NodeState.READY
    assert registry.heartbeat("pi-1", now=T0 + 3) is None


def test_drain_of_unknown_node_is_refused(registry: Registry) -> None:
    """Draining a node that is not registered raises and stores nothing."""
    with pytest.raises(UnknownNode):
        registry.drain("ghost", by="alice", reason="x")
    assert registry.redis.smembers("registry:draining") == set()


def test_problems_mark_a_node_unhealthy(registry: Registry) -> None:
    """A node reporting problems is listed with them and is not available."""
    registry.register(caps(), now=T0)
    registry.heartbeat("pi-1", problems=["not consuming any queue"], now=T0 + 1)
    view = registry.node("pi-1", now=T0 + 1)
    assert view.problems == ["not consuming any queue"] and not view.available
    registry.heartbeat("pi-1", consuming=["research-micro"], now=T0 + 2)
    assert registry.node("pi-1", now=T0 + 2).available


def test_deregister_removes_every_trace(registry: Registry) -> None:
    """After deregistration no index names the node."""
    registry.register(caps(), now=T0)
    registry.drain("pi-1", by="alice", reason="retire", now=T0)
    registry.deregister("pi-1")
    leftovers = [
        key
        for key in registry.redis.scan_iter("registry:*")
        if registry.redis.type(key) in (b"set", b"zset")
        and (
            registry.redis.sismember(key, "pi-1")
            if registry.redis.type(key) == b"set"
            else registry.redis.zscore(key, "pi-1") is not None
        )
    ]
    assert leftovers == [] and registry.node_ids() == []


def test_concurrent_heartbeats_and_registrations_stay_consistent(registry: Registry) -> None:
    """Threads heartbeating and re-registering 50 nodes leave every index exact."""
    for index in range(50):
        registry.register(caps(f"n-{index}"), now=T0)

    def hammer(worker: int) -> None:
        client = Registry(
            redis.Redis(port=registry.redis.connection_pool.connection_kwargs["port"]), POLICY
        )
        for round_ in range(40):
            node = f"n-{(worker * 7 + round_) % 50}"
            if round_ % 5 == 0:
                tier_caps = caps(
                    node,
                    tier="small",
                    queues=["research-small", "research-any"],
                    models={"m": "b" * 64},
                )
                client.register(tier_caps if worker % 2 else caps(node))
            else:
                client.heartbeat(node, run_id=f"r{round_}")

    threads = [threading.Thread(target=hammer, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    views = registry.nodes()
    assert len(views) == 50
    for queue in ("research-micro", "research-small", "research-any"):
        expected = {v.node_id for v in views if queue in v.capabilities.queues}
        assert registry.members(queue) == expected, queue
    assert registry.redis.zcard("registry:heartbeats") == 50


def test_ten_thousand_nodes_register_and_list(registry: Registry) -> None:
    """A fleet of 10,000 nodes is held and listed whole."""
    pipe_size = 10_000
    for index in range(pipe_size):
        registry.register(caps(f"n-{index:05d}"), now=T0)
    assert len(registry.nodes(now=T0)) == pipe_size
    assert len(registry.members("research-micro", "gemma3-270m")) == pipe_size


def test_registration_reports_the_run_a_restart_abandoned(registry: Registry) -> None:
    """A node that re-registers while the registry shows it running names that run, once."""
    registry.register(caps(), now=T0)
    registry.heartbeat("pi-1", run_id="r-9", now=T0 + 1)
    assert registry.register(caps(), now=T0 + 2).abandoned_run == "r-9"
    assert registry.node("pi-1", now=T0 + 2).state is NodeState.READY
    assert registry.register(caps(), now=T0 + 3).abandoned_run is None
