"""Plain data shared across layers.

A leaf module: it imports nothing of ours, so every layer can depend on it without cycles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the provider reported them; zero means "not reported".

    `input` is the whole prompt (cache reads and writes included) and `output` the whole completion
    (reasoning included), whatever the wire format; `cache_write_1h` is the part of `cache_write` that
    Anthropic keeps for an hour (billed at a higher rate than 5-minute writes).
    """

    input: int = 0
    output: int = 0
    total: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0
    cache_write_1h: int = 0

    def details(self) -> dict[str, int]:
        """Langfuse `usage_details`: disjoint buckets, since Langfuse sums every key holding "input"
        (or "output") into the input (output) total. The buckets add up to what the provider billed:
        input + input_cached_tokens + input_cache_creation* is the whole prompt, output +
        output_reasoning_tokens the whole completion. Zero cache/reasoning buckets are left out."""
        read, write, reasoning = self.cache_read, self.cache_write, self.reasoning
        out = {"input": max(0, self.input - read - write), "output": max(0, self.output - reasoning)}
        if read:
            out["input_cached_tokens"] = read
        if write:
            if self.cache_write_1h:  # Langfuse prices 5-minute and 1-hour writes under their own keys
                if write > self.cache_write_1h:
                    out["input_cache_creation_5m"] = write - self.cache_write_1h
                out["input_cache_creation_1h"] = self.cache_write_1h
            else:
                out["input_cache_creation"] = write
        if reasoning:
            out["output_reasoning_tokens"] = reasoning
        out["total"] = self.total or self.input + self.output
        return out


@dataclass(frozen=True, slots=True)
class Cost:
    """USD; None when the model has no known price (unknown is not free).

    `input` and `output` are whole sides; the other fields are the parts of them billed at their own rate
    (cache reads, cache writes and their 1-hour share, of input; reasoning, of output).
    """

    input: float = 0.0
    output: float = 0.0
    total: float = 0.0
    cache_read: float = 0.0
    cache_write: float = 0.0
    reasoning: float = 0.0
    cache_write_1h: float = 0.0

    def details(self, usage: Usage | None = None) -> dict[str, float]:
        """Langfuse `cost_details` under the same disjoint keys as `Usage.details` (given the usage, the
        cache-write key follows its 5-minute/1-hour split); the buckets add up to `total`."""
        out = {
            "input": _money(self.input - self.cache_read - self.cache_write),
            "output": _money(self.output - self.reasoning),
        }
        if self.cache_read:
            out["input_cached_tokens"] = self.cache_read
        if self.cache_write:
            if usage is not None and usage.cache_write_1h:
                if self.cache_write > self.cache_write_1h:
                    out["input_cache_creation_5m"] = _money(self.cache_write - self.cache_write_1h)
                out["input_cache_creation_1h"] = self.cache_write_1h
            else:
                out["input_cache_creation"] = self.cache_write
        if self.reasoning:
            out["output_reasoning_tokens"] = self.reasoning
        out["total"] = self.total
        return out


def _money(value: float) -> float:
    # The parts were rounded to 1e-10 each; so is their difference, or 0.1 - 0.03 shows as 0.07000000000000001.
    return round(value, 10) if value > 0 else 0.0


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
    client: str | None = None  # normalized tool name ("claude-code", "codex", …): accounting/clients.py
    metadata: dict[str, Any] = field(default_factory=dict)
    requested_model: str = ""
    resolved_model: str = ""
    provider: str = ""
    model_parameters: dict[str, Any] = field(default_factory=dict)
    input: Any = None  # messages (and tools) as sent (a RawInput until the helper reads it); None: tracing off
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
    server: str | None = None  # the upstream's host[:port] when the deployment names a URL (server.address)
    client_version: str | None = None  # the tool's version, as it states it
    # Session facts. `subagent`: the marker the tool itself sent on a subagent's call (accounting/clients.py);
    # the rest is worked out in the trace helper (tracing/callfacts.py, tracing/autosession.py).
    subagent: str | None = None
    tool_calls: dict[str, int] | None = None  # the tool calls the model made, by tool name; None: none
    request_digest: str | None = None  # of the request's content, to tell a client's re-send of a failed call
    repo: str | None = None  # the working directory's name and git branch, as the tool stated them
    branch: str | None = None
    session_derived: bool = False  # the session id is the fallback the helper assigned ("auto-…")
    resent: bool = False  # the same request as the session's previous call, which had failed

    @property
    def is_error(self) -> bool:
        return self.status_code >= 400 or self.error_type is not None

    @property
    def duration(self) -> float:
        return max(0.0, self.end_time - self.start_time)


class RawInput:
    """A call's input still as its request body's bytes, for the trace helper to read (`tracing/bodyblocks`).

    A coding agent's body is 50-200 KB and mostly the conversation it sent the call before. Handing the helper
    these bytes costs the gateway a copy, where pickling the parsed messages cost it ~0.1 ms a call; the helper
    then parses only the blocks it has not seen before. `family` names the API family whose `input_of` picks
    the input from the body.
    """

    __slots__ = ("body", "family")

    def __init__(self, body: bytes | memoryview, family: str) -> None:
        self.body = body  # in the trace helper, a view into the batch it came in (see helper_protocol.load_rows)
        self.family = family

    def __reduce__(self) -> tuple[type[RawInput], tuple[bytes, str]]:
        body = self.body  # pickles as a constructor call (no slot state dict); a view cannot pickle: its bytes
        return RawInput, (body if type(body) is bytes else bytes(body), self.family)

    def __repr__(self) -> str:
        return f"RawInput({len(self.body)} bytes of {self.family})"  # never the content


class Recorder(Protocol):
    """Where finished CallRecords go; `submit` must never block or raise (tracing is off the hot path)."""

    def submit(self, record: CallRecord) -> None: ...
