"""Request bodies of the controller API, validated and bounded.

Every body refuses unknown fields, so a misspelt option is an error rather
than silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

__all__ = [
    "DrainRequest",
    "ErrorBody",
    "Heartbeat",
    "NodeName",
    "Registration",
    "RevokeFingerprint",
    "RevokeNode",
    "RevokeRequest",
    "RunRequest",
]

NodeName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")]
ModelName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
QueueName = Annotated[str, StringConstraints(pattern=r"^research-[a-z]{1,16}$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Prompt = Annotated[str, StringConstraints(min_length=1, max_length=32_768)]
Argument = Annotated[str, StringConstraints(max_length=4096)]

RUNTIMES = ("llama_cpp", "command", "noop")
# A mapping with constrained keys: say in the schema that no other key is valid.
_ONLY_PATTERN_KEYS: dict[str, Any] = {"additionalProperties": False}


class ErrorDetail(BaseModel):
    status: int
    reason: str
    problems: list[dict[str, str]] | None = None
    decision: dict[str, Any] | None = None


class ErrorBody(BaseModel):
    """Every error the API answers: ``{"error": {"status", "reason", ...}}``."""

    error: ErrorDetail


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Registration(_Body):
    """What a worker says about itself when it starts."""

    node_id: NodeName
    tier: Annotated[str, StringConstraints(pattern=r"^[a-z]{1,16}$")]
    queues: list[QueueName] = Field(min_length=1, max_length=16)
    ram_gb: float = Field(gt=0, le=65_536)
    cpus: int = Field(ge=1, le=65_536)
    arch: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    gpu: bool = False
    gpu_memory_gb: float = Field(0.0, ge=0, le=65_536)
    models: dict[ModelName, Sha256] = Field(
        default_factory=dict, max_length=1000, json_schema_extra=_ONLY_PATTERN_KEYS
    )
    version: Annotated[str, StringConstraints(max_length=64)] = ""
    address: Annotated[str, StringConstraints(max_length=253)] = ""
    hostname: Annotated[str, StringConstraints(max_length=253)] = ""


class Heartbeat(_Body):
    """A worker's periodic report: its run, what it consumes, what is wrong."""

    run_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    consuming: list[QueueName] = Field(default_factory=list, max_length=16)
    problems: list[ShortText] = Field(default_factory=list, max_length=16)


class DrainRequest(_Body):
    reason: ShortText


class RevokeNode(_Body):
    """Revoke the token of a worker's node."""

    node_id: NodeName


class RevokeFingerprint(_Body):
    """Revoke any token by its SHA-256 fingerprint."""

    fingerprint: Sha256


RevokeRequest = RevokeNode | RevokeFingerprint


class RunRequest(_Body):
    """A run as a researcher submits it.

    ``runtime`` defaults to the model's runtime, or ``noop`` for a run with
    neither a model nor a command.
    """

    model: ModelName | None = None
    runtime: Literal["llama_cpp", "command", "noop"] | None = None
    prompt: Prompt | None = None
    prompts: list[Prompt] | None = Field(None, min_length=1, max_length=64)
    max_tokens: int = Field(64, ge=1, le=8192)
    temperature: float = Field(0.0, ge=0.0, le=5.0)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    argv: list[Argument] | None = Field(None, min_length=1, max_length=256)
    sleep_s: float = Field(0.0, ge=0.0, le=86_400)
    ram_gb: float = Field(0.0, ge=0.0, le=65_536)
    gpu: bool = False
    time_limit_s: int | None = Field(None, ge=1)
    telemetry_interval_s: float = Field(0.5, ge=0.05, le=60.0)
    labels: dict[
        Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,31}$")],
        Annotated[str, StringConstraints(max_length=200)],
    ] = Field(default_factory=dict, max_length=32, json_schema_extra=_ONLY_PATTERN_KEYS)

    @model_validator(mode="after")
    def consistent(self) -> RunRequest:
        if self.prompt is not None and self.prompts is not None:
            raise ValueError("give prompt or prompts, not both")
        if self.runtime == "llama_cpp" and not (self.prompt or self.prompts):
            raise ValueError("a llama_cpp run needs prompt or prompts")
        if self.runtime == "llama_cpp" and self.model is None:
            raise ValueError("a llama_cpp run needs a model")
        if self.runtime == "command" and not self.argv:
            raise ValueError("a command run needs argv")
        return self

    def all_prompts(self) -> list[str]:
        return list(self.prompts or ([self.prompt] if self.prompt else []))
