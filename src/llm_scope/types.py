"""Plain data shared across layers.

A leaf module: it imports nothing of ours, so every layer can depend on it without cycles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the provider reported them; zero means "not reported"."""

    input: int = 0
    output: int = 0
    total: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0

    def details(self) -> dict[str, int]:
        """Langfuse `usage_details` keys; zero cache/reasoning keys are left out."""
        out = {"input": self.input, "output": self.output, "total": self.total or self.input + self.output}
        if self.cache_read:
            out["cache_read_input_tokens"] = self.cache_read
        if self.cache_write:
            out["cache_creation_input_tokens"] = self.cache_write
        if self.reasoning:
            out["reasoning_tokens"] = self.reasoning
        return out


@dataclass(frozen=True, slots=True)
class Cost:
    """USD; None when the model has no known price (unknown is not free)."""

    input: float = 0.0
    output: float = 0.0
    total: float = 0.0

    def details(self) -> dict[str, float]:
        return {"input": self.input, "output": self.output, "total": self.total}


@dataclass(frozen=True, slots=True)
class Deployment:
    """One concrete upstream a model name can be served by (a `model_list` entry)."""

    model_name: str  # the name clients ask for
    provider: str  # "openai", "azure", "anthropic", "mock", ... (LiteLLM's prefix)
    model: str  # the upstream model id, without the provider prefix
    api_base: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    timeout: float | None = None  # seconds; None means the gateway default
    params: dict[str, Any] = field(default_factory=dict)  # other litellm_params, passed on
    wildcard: bool = False
    unavailable: str | None = None  # why calls to it fail (an unset os.environ/ reference, …); None: usable

    @property
    def litellm_model(self) -> str:
        prefix = f"{self.provider}/"
        return self.model if self.model.startswith(prefix) else prefix + self.model


@dataclass(slots=True)
class CallRecord:
    """Everything observed about one call: what tracing stores and exports.

    Built by the gateway while the response streams; times are epoch seconds (float).
    """

    trace_id: str  # 32 hex
    route: str  # "chat_completion", "messages", ...
    start_time: float
    end_time: float = 0.0
    completion_start_time: float | None = None  # first token
    user_id: str | None = None
    session_id: str | None = None
    client: str | None = None  # from User-Agent
    metadata: dict[str, Any] = field(default_factory=dict)
    requested_model: str = ""
    resolved_model: str = ""
    provider: str = ""
    model_parameters: dict[str, Any] = field(default_factory=dict)
    input: Any = None  # messages (and tools) as sent; None when content tracing is off
    output: Any = None  # the assistant message as the client received it
    stream: bool = False
    usage: Usage = Usage()  # immutable, so one shared "nothing reported" serves every record
    cost: Cost | None = None
    status_code: int = 200
    error_type: str | None = None
    error_message: str | None = None
    upstream_latency: float | None = None  # seconds from upstream send to full answer
    finish_reason: str | None = None
    key_id: str | None = None  # the virtual key that made the call, if any

    @property
    def is_error(self) -> bool:
        return self.status_code >= 400 or self.error_type is not None

    @property
    def duration(self) -> float:
        return max(0.0, self.end_time - self.start_time)


class Recorder(Protocol):
    """Where finished CallRecords go; `submit` must never block or raise (tracing is off the hot path)."""

    def submit(self, record: CallRecord) -> None: ...
