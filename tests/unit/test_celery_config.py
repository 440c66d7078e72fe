"""The shared Celery configuration and the run limits it is built from."""

from __future__ import annotations

import pytest

from controller.celery_config import ConfigError, RunLimits, make_celery


def test_settings_that_keep_runs() -> None:
    """JSON only, late acks, requeue on worker loss, no prefetch, tier order, bounded runs."""
    conf = make_celery("redis://127.0.0.1:1/0").conf
    assert conf.accept_content == ["json"] and conf.result_accept_content == ["json"]
    assert conf.task_serializer == "json"
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1 and conf.worker_disable_prefetch
    assert conf.task_track_started and conf.result_expires == 7 * 24 * 3600
    options = conf.broker_transport_options
    assert options["queue_order_strategy"] == "priority"
    assert conf.task_time_limit + 300 <= options["visibility_timeout"]
    assert [q.name for q in conf.task_queues] == [
        "research-micro",
        "research-small",
        "research-medium",
        "research-large",
        "research-gpu",
        "research-any",
    ]


def test_time_limit_too_close_to_visibility_timeout_is_refused() -> None:
    """A run limit that could outlive the visibility timeout stops the app being built."""
    with pytest.raises(ConfigError, match="must stay below the broker visibility timeout"):
        make_celery(
            "redis://127.0.0.1:1/0", RunLimits(time_limit_s=7000, visibility_timeout_s=7200)
        )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RESEARCH_RUN_TIME_LIMIT_S": "an hour"}, "whole numbers of seconds"),
        ({"RESEARCH_MAX_ATTEMPTS": "0"}, "max attempts at least 1"),
        ({"RESEARCH_RUN_TIME_LIMIT_S": "9000"}, "raise RESEARCH_VISIBILITY_TIMEOUT_S"),
    ],
)
def test_bad_limits_from_the_environment(env: dict[str, str], message: str) -> None:
    """Each bad variable is refused with what would be right."""
    with pytest.raises(ConfigError, match=message):
        RunLimits.from_env(env)


def test_limits_from_the_environment() -> None:
    """Variables override the defaults."""
    limits = RunLimits.from_env(
        {
            "RESEARCH_RUN_TIME_LIMIT_S": "600",
            "RESEARCH_VISIBILITY_TIMEOUT_S": "1200",
            "RESEARCH_MAX_ATTEMPTS": "5",
        }
    )
    assert (limits.time_limit_s, limits.visibility_timeout_s, limits.max_attempts) == (
        600,
        1200,
        5,
    )
