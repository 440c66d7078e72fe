"""Tests of worker.runtimes.llama_cpp: real generation with Gemma 3 270M."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from worker.runtimes.base import RuntimeParamsError
from worker.runtimes.llama_cpp import (
    DEFAULT_N_CTX,
    LlamaCppRuntime,
    LlamaParams,
    ModelLoadError,
    available_cpus,
)

PROMPTS = ["The capital of France is", "One, two, three,"]


@pytest.fixture(scope="module")
def runtime() -> Iterator[LlamaCppRuntime]:
    """One runtime for the module, so that the model loads once."""
    runtime = LlamaCppRuntime()
    yield runtime
    runtime.unload()


def test_params_defaults() -> None:
    """A single prompt gets 64 tokens, greedy, seed 0, on every available CPU."""
    params = LlamaParams.parse({"prompt": "hi"})
    assert params.prompts == ("hi",)
    assert (params.max_tokens, params.temperature, params.seed) == (64, 0.0, 0)
    assert (params.n_ctx, params.n_threads) == (DEFAULT_N_CTX, available_cpus())


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "give either prompts .* or prompt, not neither"),
        ({"prompt": "a", "prompts": ["b"]}, "not both"),
        ({"prompt": "a", "max_tokens": 0}, "max_tokens: expected an integer from 1 to 2048"),
        ({"prompt": "a", "n_ctx": 64, "max_tokens": 65}, "max_tokens: .* from 1 to 64"),
        ({"prompt": "a", "temperature": -1}, "temperature: expected a number from 0.0"),
        ({"prompt": "a", "top_p": 2}, "top_p: expected a number from 0.0 to 1.0"),
        ({"prompt": "a", "stop": ["."]}, "unknown 'stop'"),
    ],
)
def test_check_refuses_bad_params(params: dict[str, Any], message: str) -> None:
    """check names the param that is wrong, without loading anything."""
    with pytest.raises(RuntimeParamsError, match=message):
        LlamaCppRuntime().check(params)


@pytest.mark.slow
def test_generates_one_text_per_prompt(runtime: LlamaCppRuntime, gemma_model_path: Path) -> None:
    """Each prompt gets a non-empty text; counts and timings are filled in."""
    output = runtime.run({"prompts": PROMPTS, "max_tokens": 12}, gemma_model_path)
    assert output.failure is None
    assert len(output.output) == 2
    assert all(isinstance(text, str) and text.strip() for text in output.output)
    assert output.prompt_tokens > len(PROMPTS)
    assert 0 < output.completion_tokens <= 2 * 12
    assert output.first_token_s is not None and output.first_token_s > 0
    assert output.tokens_per_s is not None and output.tokens_per_s > 0


@pytest.mark.slow
def test_keeps_the_model_loaded_between_runs(gemma_model_path: Path) -> None:
    """The second run reuses the loaded model and reports a load of 0 s."""
    runtime = LlamaCppRuntime()
    first = runtime.run({"prompt": "Hello", "max_tokens": 2}, gemma_model_path)
    second = runtime.run({"prompt": "Hello", "max_tokens": 2}, gemma_model_path)
    assert (first.model_cached, second.model_cached) == (False, True)
    assert first.load_s is not None and first.load_s > 0
    assert second.load_s == 0.0
    runtime.unload()


@pytest.mark.slow
def test_a_different_n_ctx_reloads_the_model(gemma_model_path: Path) -> None:
    """A load param that differs from the loaded model's loads it again."""
    runtime = LlamaCppRuntime()
    runtime.run({"prompt": "Hello", "max_tokens": 1}, gemma_model_path)
    again = runtime.run({"prompt": "Hello", "max_tokens": 1, "n_ctx": 256}, gemma_model_path)
    assert again.model_cached is False
    runtime.unload()


@pytest.mark.slow
def test_greedy_generation_repeats_exactly(
    runtime: LlamaCppRuntime, gemma_model_path: Path
) -> None:
    """Greedy decoding of the same prompt gives the same text and counts twice."""
    params = {"prompt": PROMPTS[0], "max_tokens": 16}
    first = runtime.run(params, gemma_model_path)
    runtime.run({"prompt": "Something else first", "max_tokens": 4}, gemma_model_path)
    second = runtime.run(params, gemma_model_path)
    assert first.output == second.output
    assert first.completion_tokens == second.completion_tokens


@pytest.mark.slow
def test_a_prompt_longer_than_the_context_is_refused(
    runtime: LlamaCppRuntime, gemma_model_path: Path
) -> None:
    """A prompt that with max_tokens exceeds n_ctx is refused with the sizes."""
    params = {"prompt": "word " * 40, "max_tokens": 8, "n_ctx": 32}
    with pytest.raises(RuntimeParamsError, match=r"needs n_ctx of at least \d+; the run has 32"):
        runtime.run(params, gemma_model_path)


def test_a_file_that_is_no_gguf_fails_to_load(tmp_path: Path) -> None:
    """llama.cpp refusing a file becomes ModelLoadError naming the file."""
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a model" * 100)
    with pytest.raises(ModelLoadError, match=f"could not load {broken}: .*invalid magic"):
        LlamaCppRuntime().run({"prompt": "hi", "max_tokens": 1}, broken)


def test_a_run_without_model_is_refused() -> None:
    """llama_cpp needs a model file."""
    with pytest.raises(RuntimeParamsError, match="needs a model file"):
        LlamaCppRuntime().run({"prompt": "hi"}, None)
