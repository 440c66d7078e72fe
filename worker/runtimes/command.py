"""The command runtime: a run that executes a harness program.

Params:

- ``argv`` (non-empty list of strings, required): the program and its
  arguments, executed without a shell. ``{model_path}`` in any argument is
  replaced by the path of the run's model file.
- ``timeout_s`` (number, 0.1 to 604800, default none): after this long the
  harness's process group gets SIGTERM, then SIGKILL ``KILL_GRACE_S``
  later, and the run fails with ``CommandTimeoutError``.
- ``env`` (mapping of strings, default empty): added to the worker's
  environment. ``MODEL_PATH`` is set to the model file when the run has one.
- ``cwd`` (string, default the worker's): the working directory.

The harness runs in a process group of its own, and the whole group is
killed when the harness exits, so that no process of a run outlives it.
The output keeps the last ``STDOUT_LIMIT_BYTES`` of standard output (the end
is where a harness prints its results) and the last ``STDERR_TAIL_BYTES`` of
standard error. When the last non-empty line of standard output is one JSON
object, it is parsed into ``output_json``. A non-zero exit fails the run with
``CommandExitError``; the output is kept either way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from worker.runtimes.base import RunError, RunOutput, Runtime, RuntimeParamsError
from worker.runtimes.params import ParamReader

__all__ = [
    "KILL_GRACE_S",
    "MODEL_PATH_PLACEHOLDER",
    "STDERR_TAIL_BYTES",
    "STDOUT_LIMIT_BYTES",
    "CommandExitError",
    "CommandParams",
    "CommandRuntime",
    "CommandTimeoutError",
]

logger = logging.getLogger(__name__)

STDOUT_LIMIT_BYTES = 1 << 20
STDERR_TAIL_BYTES = 64 << 10
KILL_GRACE_S = 2.0
MODEL_PATH_PLACEHOLDER = "{model_path}"
_READ_CHUNK = 64 << 10
_PIPE_CLOSE_WAIT_S = 5.0


class CommandExitError(RunError):
    """A harness that exited with a non-zero status or was killed by a signal."""


class CommandTimeoutError(RunError):
    """A harness that ran past its ``timeout_s``."""


@dataclass(frozen=True)
class CommandParams:
    argv: tuple[str, ...]
    timeout_s: float | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> CommandParams:
        """Return the params; raise RuntimeParamsError if any is unacceptable."""
        read = ParamReader("command", params)
        argv = read.texts("argv")
        parsed = cls(
            argv=tuple(argv or ()),
            timeout_s=read.optional_number("timeout_s", minimum=0.1, maximum=604800.0),
            env=read.text_map("env"),
            cwd=read.text("cwd"),
        )
        read.finish()
        if argv is None:
            raise RuntimeParamsError("command params: argv: required, a non-empty list of strings")
        return parsed

    def with_model_path(self, model_path: Path | None) -> CommandParams:
        """Return these params with the placeholder in argv replaced; raise
        RuntimeParamsError if argv uses it and the run has no model."""
        if not any(MODEL_PATH_PLACEHOLDER in arg for arg in self.argv):
            return self
        if model_path is None:
            raise RuntimeParamsError(
                f"command params: argv uses {MODEL_PATH_PLACEHOLDER} but the run names no model"
            )
        argv = tuple(arg.replace(MODEL_PATH_PLACEHOLDER, str(model_path)) for arg in self.argv)
        return CommandParams(argv, self.timeout_s, self.env, self.cwd)


class _Tail:
    """The last ``limit`` bytes of a stream, and how many bytes it had."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.data += chunk
        if len(self.data) > self.limit:
            del self.data[: len(self.data) - self.limit]

    @property
    def truncated(self) -> bool:
        return self.total > self.limit

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class CommandRuntime(Runtime):
    """Runs a harness program as a child process group."""

    name = "command"
    needs_model = False

    def check(self, params: Mapping[str, Any]) -> None:
        CommandParams.parse(params)

    def run(self, params: Mapping[str, Any], model_path: Path | None) -> RunOutput:
        """Run the harness to its end and return its exit code and output.

        Raises RuntimeParamsError for bad params and OSError when the program
        cannot be started; a non-zero exit or a timeout is a failure in the
        returned RunOutput.
        """
        parsed = CommandParams.parse(params).with_model_path(model_path)
        env = {**os.environ, **parsed.env}
        if model_path is not None:
            env["MODEL_PATH"] = str(model_path)
        stdout, stderr = _Tail(STDOUT_LIMIT_BYTES), _Tail(STDERR_TAIL_BYTES)
        process = subprocess.Popen(
            parsed.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=parsed.cwd,
            start_new_session=True,
        )
        logger.debug("command %s: started as process group %s", parsed.argv[0], process.pid)
        timed_out = _supervise(process, parsed.timeout_s, stdout, stderr)
        return _output(parsed, process.returncode, timed_out, stdout, stderr)


def _supervise(
    process: subprocess.Popen[bytes], timeout_s: float | None, stdout: _Tail, stderr: _Tail
) -> bool:
    """Wait for the harness, collecting its output; return whether it timed out.

    Whatever happens, the process group is killed and the harness reaped
    before this returns or raises.
    """
    assert process.stdout is not None and process.stderr is not None
    readers = [
        threading.Thread(target=_drain, args=(process.stdout, stdout), daemon=True),
        threading.Thread(target=_drain, args=(process.stderr, stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    timed_out = False
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        logger.info("command: process group %s ran past %s s, terminating", process.pid, timeout_s)
        _signal_group(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=KILL_GRACE_S)
    finally:
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()
        for reader in readers:
            reader.join(timeout=_PIPE_CLOSE_WAIT_S)
    if any(reader.is_alive() for reader in readers):
        logger.warning(
            "command: process group %s: output still open after the group was killed; "
            "a process that left the group holds it",
            process.pid,
        )
    return timed_out


def _drain(stream: IO[bytes], sink: _Tail) -> None:
    with stream:
        while chunk := os.read(stream.fileno(), _READ_CHUNK):
            sink.feed(chunk)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _output(
    parsed: CommandParams, exit_code: int, timed_out: bool, stdout: _Tail, stderr: _Tail
) -> RunOutput:
    stdout_text, stderr_text = stdout.text(), stderr.text()
    output = {
        "exit_code": exit_code,
        "timed_out": timed_out,
        "stdout": stdout_text,
        "stdout_bytes": stdout.total,
        "stdout_truncated": stdout.truncated,
        "stderr_tail": stderr_text,
        "output_json": _last_line_json(stdout_text),
    }
    return RunOutput(output=output, failure=_failure(parsed, exit_code, timed_out, stderr_text))


def _failure(
    parsed: CommandParams, exit_code: int, timed_out: bool, stderr_text: str
) -> RunError | None:
    program = parsed.argv[0]
    if timed_out:
        return CommandTimeoutError(
            f"{program} ran past timeout_s={parsed.timeout_s:g}; its process group was killed"
        )
    if exit_code == 0:
        return None
    if exit_code < 0:
        reason = f"{program} was killed by {_signal_name(-exit_code)}"
    else:
        reason = f"{program} exited with status {exit_code}"
    last_error = _last_line(stderr_text)
    return CommandExitError(f"{reason}: {last_error[:200]}" if last_error else reason)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _last_line(text: str) -> str:
    lines = text.rstrip().rsplit("\n", 1)
    return lines[-1].strip()


def _last_line_json(stdout_text: str) -> dict[str, Any] | None:
    """Return the last line of stdout parsed as a JSON object, or None."""
    line = _last_line(stdout_text)
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
