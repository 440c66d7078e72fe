"""Tests of worker.runtimes.command: harness programs as real processes."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from worker.runtimes.base import RuntimeParamsError
from worker.runtimes.command import (
    KILL_GRACE_S,
    STDOUT_LIMIT_BYTES,
    CommandExitError,
    CommandRuntime,
    CommandTimeoutError,
)


def _sh(script: str, **params: object) -> dict[str, object]:
    return {"argv": ["sh", "-c", script], **params}


def _gone(pid: int) -> bool:
    """Whether a process has ended (a zombie waiting for its reaper counts)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pid: int, within_s: float = 2.0) -> bool:
    deadline = time.monotonic() + within_s
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return _gone(pid)


def test_success_parses_a_json_last_line() -> None:
    """A harness whose last line is a JSON object gets it parsed into output_json."""
    output = CommandRuntime().run(_sh('echo working; echo \'{"score": 0.5, "n": 3}\''), None)
    assert output.failure is None
    assert output.output["exit_code"] == 0
    assert output.output["stdout"] == 'working\n{"score": 0.5, "n": 3}\n'
    assert output.output["output_json"] == {"score": 0.5, "n": 3}
    assert output.output["stdout_truncated"] is False


@pytest.mark.parametrize("last_line", ["done", "[1, 2]", "{not json"])
def test_a_last_line_that_is_no_json_object_gives_none(last_line: str) -> None:
    """output_json is None unless the last line is one JSON object."""
    output = CommandRuntime().run({"argv": ["echo", last_line]}, None)
    assert output.output["output_json"] is None


def test_non_zero_exit_fails_with_status_and_last_stderr_line() -> None:
    """A non-zero exit is a failure naming the status and stderr's last line."""
    output = CommandRuntime().run(_sh("echo partial; echo 'no GPU found' >&2; exit 3"), None)
    assert isinstance(output.failure, CommandExitError)
    assert str(output.failure) == "sh exited with status 3: no GPU found"
    assert output.output["exit_code"] == 3
    assert output.output["stdout"] == "partial\n"
    assert output.output["stderr_tail"] == "no GPU found\n"


def test_death_by_signal_names_the_signal() -> None:
    """A harness killed by a signal fails naming that signal."""
    output = CommandRuntime().run(_sh("kill -KILL $$"), None)
    assert isinstance(output.failure, CommandExitError)
    assert str(output.failure) == "sh was killed by SIGKILL"
    assert output.output["exit_code"] == -9


def test_timeout_kills_the_process_group() -> None:
    """Past timeout_s the harness and its child are killed and the run fails."""
    started = time.perf_counter()
    output = CommandRuntime().run(_sh("sleep 60 & echo $!; wait", timeout_s=0.5), None)
    elapsed = time.perf_counter() - started
    assert isinstance(output.failure, CommandTimeoutError)
    assert "ran past timeout_s=0.5" in str(output.failure)
    assert output.output["timed_out"] is True
    assert 0.5 <= elapsed < 0.5 + KILL_GRACE_S
    assert _wait_gone(int(output.output["stdout"]))


def test_timeout_kills_a_harness_that_ignores_sigterm() -> None:
    """A group ignoring SIGTERM gets SIGKILL after the grace period."""
    started = time.perf_counter()
    output = CommandRuntime().run(
        _sh("trap '' TERM; sleep 60 & echo $!; wait", timeout_s=0.3), None
    )
    elapsed = time.perf_counter() - started
    assert isinstance(output.failure, CommandTimeoutError)
    assert 0.3 + KILL_GRACE_S <= elapsed < 0.3 + KILL_GRACE_S + 2.0
    assert _wait_gone(int(output.output["stdout"]))


def test_children_left_behind_are_killed_when_the_harness_exits() -> None:
    """A background child still holding stdout does not outlive its harness."""
    started = time.perf_counter()
    output = CommandRuntime().run(_sh("sleep 60 & echo $!"), None)
    assert output.failure is None
    assert time.perf_counter() - started < 2.0
    assert _wait_gone(int(output.output["stdout"]))


def test_model_path_is_substituted_and_exported(tmp_path: Path) -> None:
    """{model_path} in argv and MODEL_PATH in the environment are the model file."""
    model = tmp_path / "m.gguf"
    model.write_bytes(b"")
    script = 'echo "$1"; echo "$MODEL_PATH"'
    output = CommandRuntime().run({"argv": ["sh", "-c", script, "sh", "{model_path}"]}, model)
    assert output.output["stdout"] == f"{model}\n{model}\n"


def test_model_path_placeholder_without_a_model_is_refused() -> None:
    """A run naming no model cannot use {model_path}."""
    with pytest.raises(RuntimeParamsError, match=r"argv uses \{model_path\} but the run names"):
        CommandRuntime().run({"argv": ["cat", "{model_path}"]}, None)


def test_env_additions_and_cwd_reach_the_harness(tmp_path: Path) -> None:
    """env is added to the worker's environment and cwd is the working directory."""
    env = {"LAB_X": "1", "LAB_Y": "yes"}
    params = _sh('echo "$LAB_X $LAB_Y $HOME"; pwd', env=env, cwd=str(tmp_path))
    output = CommandRuntime().run(params, None)
    assert output.output["stdout"] == f"1 yes {os.environ['HOME']}\n{tmp_path}\n"


def test_stdout_is_truncated_to_its_last_mebibyte() -> None:
    """Past the limit only the end of stdout is kept, flagged, with its JSON line."""
    script = (
        "import sys; sys.stdout.write('x' * 1500000 + '\\n');"
        "sys.stdout.write('{\"done\": true}\\n')"
    )
    output = CommandRuntime().run({"argv": [sys.executable, "-c", script]}, None)
    assert output.output["stdout_truncated"] is True
    assert output.output["stdout_bytes"] == 1500000 + 1 + 15
    assert len(output.output["stdout"].encode()) == STDOUT_LIMIT_BYTES
    assert output.output["output_json"] == {"done": True}


def test_a_missing_program_raises_file_not_found() -> None:
    """A program that does not exist raises, for the caller to report."""
    with pytest.raises(FileNotFoundError):
        CommandRuntime().run({"argv": ["no-such-harness-program"]}, None)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "argv: required"),
        ({"argv": "echo hi"}, "argv: expected a non-empty list of strings"),
        ({"argv": ["true"], "timeout_s": 0}, "timeout_s: expected a number from 0.1"),
        ({"argv": ["true"], "shell": True}, "unknown 'shell'"),
    ],
)
def test_check_refuses_bad_params(params: dict[str, object], message: str) -> None:
    """check names the param that is wrong."""
    with pytest.raises(RuntimeParamsError, match=message):
        CommandRuntime().check(params)
