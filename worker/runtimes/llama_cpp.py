"""The llama_cpp runtime: text generation with llama.cpp on a GGUF model file.

Params:

- ``prompts`` (non-empty list of strings) or ``prompt`` (one string): the
  texts to continue, each as a plain completion, one output text each.
- ``max_tokens`` (integer, 1 to ``n_ctx``, default 64): tokens generated
  per prompt at most; generation also stops at an end-of-generation token.
- ``temperature`` (number, 0 to 10, default 0.0): 0 is greedy decoding.
- ``top_k`` (integer, default 40) and ``top_p`` (number, default 0.95):
  sampling filters, which matter only when ``temperature`` is above 0.
- ``seed`` (integer, default 0): the sampler's seed, set for every prompt.
- ``n_ctx`` (integer, 16 to 131072, default 2048): the context window.
- ``n_threads`` (integer, default the CPUs this process may use).

Each prompt is evaluated from an empty context, so that its timings and
text do not depend on what the process ran before. Timings, in seconds:
``load_s`` is the model load (0 when the model was already loaded);
``first_token_s`` is the mean, over prompts, of the time from the start of a
prompt's evaluation to its first sampled token; ``tokens_per_s`` is the
decode rate, the tokens sampled after each prompt's first over the time
they took. Token counts exclude the end-of-generation token.

The model stays loaded in the process for the next run with the same file,
``n_ctx`` and ``n_threads``; loading a different one frees it first.
llama.cpp's own log lines go to this module's logger at DEBUG level, and its
error lines into the message of a failed load. While a model loads,
llama-cpp-python points the process's stdout and stderr at /dev/null, so
any other output of the process in that half second is lost.

Limitation: prompts are continued as plain text; the model's chat template
is not applied, which an instruction-tuned model would answer better with.
A ``chat`` param (messages in, the template applied) would end this.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.runtimes.base import RunError, RunOutput, Runtime, RuntimeParamsError
from worker.runtimes.params import ParamReader

__all__ = [
    "DEFAULT_N_CTX",
    "LlamaCppRuntime",
    "LlamaParams",
    "ModelLoadError",
    "available_cpus",
]

logger = logging.getLogger(__name__)

DEFAULT_N_CTX = 2048
# ggml's GGML_LOG_LEVEL_ERROR (NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5).
_LLAMA_ERROR_LEVEL = 4
_recent_llama_errors: deque[str] = deque(maxlen=5)
# llama.cpp keeps only a pointer to the log callback: this keeps it alive.
_log_callbacks: list[object] = []
# Models still loaded at exit are freed before the interpreter tears down the
# llama_cpp module, which their finalizers need.
_runtimes: weakref.WeakSet[LlamaCppRuntime] = weakref.WeakSet()


class ModelLoadError(RunError):
    """A model file that llama.cpp could not load."""


def available_cpus() -> int:
    """Return how many CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass(frozen=True)
class LlamaParams:
    prompts: tuple[str, ...]
    max_tokens: int = 64
    temperature: float = 0.0
    top_k: int = 40
    top_p: float = 0.95
    seed: int = 0
    n_ctx: int = DEFAULT_N_CTX
    n_threads: int = field(default_factory=available_cpus)

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> LlamaParams:
        """Return the params; raise RuntimeParamsError if any is unacceptable."""
        read = ParamReader("llama_cpp", params)
        prompts, prompt = read.texts("prompts"), read.text("prompt")
        if (prompts is None) == (prompt is None):
            raise RuntimeParamsError(
                "llama_cpp params: give either prompts (a list of strings) or prompt, not "
                + ("both" if prompts else "neither")
            )
        n_ctx = read.integer("n_ctx", DEFAULT_N_CTX, minimum=16, maximum=131072)
        parsed = cls(
            prompts=tuple(prompts or [prompt or ""]),
            max_tokens=read.integer("max_tokens", 64, minimum=1, maximum=n_ctx),
            temperature=read.number("temperature", 0.0, minimum=0.0, maximum=10.0),
            top_k=read.integer("top_k", 40, minimum=0),
            top_p=read.number("top_p", 0.95, minimum=0.0, maximum=1.0),
            seed=read.integer("seed", 0, minimum=0, maximum=2**32 - 1),
            n_ctx=n_ctx,
            n_threads=read.integer("n_threads", available_cpus(), minimum=1, maximum=1024),
        )
        read.finish()
        return parsed


@dataclass(frozen=True)
class _LoadKey:
    """What makes a loaded model reusable: the same file, unchanged, and the
    same load params."""

    path: str
    size: int
    mtime_ns: int
    n_ctx: int
    n_threads: int

    @classmethod
    def of(cls, model_path: Path, params: LlamaParams) -> _LoadKey:
        stat = model_path.stat()
        return cls(
            str(model_path.resolve()),
            stat.st_size,
            stat.st_mtime_ns,
            params.n_ctx,
            params.n_threads,
        )


@dataclass(frozen=True)
class _Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    first_token_s: float
    decode_tokens: int
    decode_s: float


class LlamaCppRuntime(Runtime):
    """Generates text with llama.cpp, keeping the last model loaded."""

    name = "llama_cpp"
    needs_model = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: _LoadKey | None = None
        self._llm: Any = None
        _runtimes.add(self)

    def check(self, params: Mapping[str, Any]) -> None:
        LlamaParams.parse(params)

    def run(self, params: Mapping[str, Any], model_path: Path | None) -> RunOutput:
        """Generate a text for each prompt and return them as the output.

        Raises RuntimeParamsError for bad params, for a run without a model,
        or for a prompt too long for ``n_ctx``; ModelLoadError when llama.cpp
        cannot load the file.
        """
        parsed = LlamaParams.parse(params)
        if model_path is None:
            raise RuntimeParamsError("llama_cpp: a run needs a model file; this one names none")
        with self._lock:
            llm, load_s, cached = self._load(model_path, parsed)
            generations = [_generate(llm, prompt, parsed) for prompt in parsed.prompts]
        return _run_output(generations, load_s, cached)

    def unload(self) -> None:
        """Free the loaded model, if any."""
        with self._lock:
            self._close()

    def _load(self, model_path: Path, params: LlamaParams) -> tuple[Any, float, bool]:
        """Return the model, the seconds it took to load, and whether it was
        already loaded; raise ModelLoadError if llama.cpp cannot load it."""
        key = _LoadKey.of(model_path, params)
        if self._key == key:
            return self._llm, 0.0, True
        self._close()
        llama_cpp = _llama_cpp()
        _recent_llama_errors.clear()
        started = time.perf_counter()
        try:
            llm = llama_cpp.Llama(
                model_path=str(model_path),
                n_ctx=params.n_ctx,
                n_threads=params.n_threads,
                n_threads_batch=params.n_threads,
                verbose=False,
            )
        except ValueError as exc:
            said = "; ".join(_recent_llama_errors) or str(exc)
            raise ModelLoadError(f"llama.cpp could not load {model_path}: {said}") from exc
        load_s = time.perf_counter() - started
        logger.info("model %s: loaded in %.2f s", model_path.name, load_s)
        self._key, self._llm = key, llm
        return llm, load_s, False

    def _close(self) -> None:
        if self._llm is not None:
            logger.info("model %s: unloading", Path(self._key.path).name if self._key else "?")
            self._llm.close()
        self._key, self._llm = None, None


@atexit.register
def _unload_all() -> None:
    for runtime in list(_runtimes):
        runtime.unload()


def _generate(llm: Any, prompt: str, params: LlamaParams) -> _Generation:
    """Generate from one prompt, timing the first token and the rest."""
    llama_cpp = _llama_cpp()
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    prompt_tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
    _check_context(len(prompt_tokens), params)
    llm.reset()
    llm.set_seed(params.seed)
    completion: list[int] = []
    sampled = 0
    started = time.perf_counter()
    first_token_at: float | None = None
    for token in llm.generate(
        prompt_tokens,
        temp=params.temperature,
        top_k=params.top_k,
        top_p=params.top_p,
        repeat_penalty=1.0,
    ):
        sampled += 1
        if first_token_at is None:
            first_token_at = time.perf_counter()
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            break
        completion.append(token)
        if len(completion) >= params.max_tokens:
            break
    finished = time.perf_counter()
    first_token_at = first_token_at or finished
    text = llm.detokenize(completion, prev_tokens=prompt_tokens)
    return _Generation(
        text=text.decode("utf-8", errors="replace"),
        prompt_tokens=len(prompt_tokens),
        completion_tokens=len(completion),
        first_token_s=first_token_at - started,
        decode_tokens=max(sampled - 1, 0),
        decode_s=finished - first_token_at,
    )


def _check_context(prompt_tokens: int, params: LlamaParams) -> None:
    needed = prompt_tokens + params.max_tokens
    if needed > params.n_ctx:
        raise RuntimeParamsError(
            f"llama_cpp: a prompt of {prompt_tokens} tokens plus max_tokens "
            f"{params.max_tokens} needs n_ctx of at least {needed}; the run has {params.n_ctx}"
        )


def _run_output(generations: Sequence[_Generation], load_s: float, cached: bool) -> RunOutput:
    decode_tokens = sum(g.decode_tokens for g in generations)
    decode_s = sum(g.decode_s for g in generations)
    return RunOutput(
        output=[g.text for g in generations],
        prompt_tokens=sum(g.prompt_tokens for g in generations),
        completion_tokens=sum(g.completion_tokens for g in generations),
        load_s=load_s,
        first_token_s=sum(g.first_token_s for g in generations) / len(generations),
        tokens_per_s=decode_tokens / decode_s if decode_tokens and decode_s > 0 else None,
        model_cached=cached,
    )


@functools.cache
def _llama_cpp() -> Any:
    """Return the llama_cpp module, its log routed to this module's logger.

    Imported on first use, so that the controller can check params of this
    runtime without llama.cpp installed.
    """
    import llama_cpp

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def route(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        line = text.decode("utf-8", errors="replace").rstrip()
        if not line:
            return
        logger.debug("llama.cpp: %s", line)
        if level == _LLAMA_ERROR_LEVEL:
            _recent_llama_errors.append(line)

    _log_callbacks.append(route)
    llama_cpp.llama_log_set(route, ctypes.c_void_p(0))
    return llama_cpp
