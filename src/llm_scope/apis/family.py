"""What an API family is: the `ApiFamily` row every layer reads, and the pieces several families share.

The fields are exactly what the HTTP layer, the gateway and the providers used to branch on by API name.
A row holds plain data and pure functions; the layers above keep the machinery (the entry layer, the
retry loop, the passthrough clients) and read the row instead of asking "which API is this?".
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from .. import jsoncodec
from ..errors import GatewayError, InvalidRequest
from ..types import Deployment, Usage

# A family's name: the API a provider is asked to answer in (a key of `apis.BY_NAME`).
ApiName = str
# What the built-in mock answers: a whole JSON body, or the SSE chunks of a stream.
MockAnswer = bytes | AsyncIterator[bytes]


@dataclass
class Summary:
    """What the trace keeps of an answer: the assistant output, the usage billed, why it stopped."""

    output: dict[str, Any] | None
    usage: Usage
    finish_reason: str | None
    error: str | None = None


class Tap(Protocol):
    """Watches a stream as it is relayed: forwarding stays an append, parsing waits for `summary()`."""

    first_chunk_at: float | None

    def feed(self, chunk: bytes) -> bytes: ...

    def flush(self) -> bytes: ...

    def summary(self) -> Summary: ...

    @property
    def ended(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class ApiFamily:
    """One API family, as the layers that serve it need to know it."""

    name: ApiName  # what a provider is called for ("chat", "messages", ...)
    route: str  # the record's route and the metrics' `route` label
    paths: tuple[str, ...]  # the POST paths that serve it, matched exactly
    validate: Callable[[Any], dict[str, Any]]  # the parsed body, or InvalidRequest in the family's words
    input_of: Callable[[dict[str, Any]], Any]  # the prompt a trace shows
    prepare: Callable[[dict[str, Any]], tuple[dict[str, Any], bool]]  # body for the upstream; usage added?
    summarize: Callable[[bytes], Summary]  # a whole answer's output, usage and finish reason
    tap: Callable[[bool], Tap]  # a stream's tap; True: strip the usage `prepare` asked for
    stream_error: Callable[[GatewayError], bytes]  # an error after the first byte, as the client's SDK reads it
    mock: Callable[[dict[str, Any], Deployment], MockAnswer]  # the built-in mock model's answer
    upstream_path: str  # the path under a passthrough upstream's base URL
    litellm: str  # the LiteLLM function that translates it (an attribute path under `litellm`)
    genai_operation: str  # OpenTelemetry's gen_ai.operation.name ("chat", "embeddings", or its own name)
    litellm_stream: Literal["chat", "named", "anthropic"] = "named"  # how a LiteLLM stream is re-encoded
    anthropic: bool = False  # Anthropic's wire: its error bodies, the Anthropic passthrough
    forward: tuple[str, ...] = ()  # client headers the upstream must see (anthropic-version, anthropic-beta)


class EventTap:
    """Relays SSE bytes untouched and remembers them. First-token time is when `marker` first passes (b"":
    the first chunk); `end_markers` are the format's terminal events."""

    def __init__(self, marker: bytes, end_markers: tuple[bytes, ...], summarize: Callable[[bytes], Summary]) -> None:
        self.marker = marker
        self.end_markers = end_markers
        self._summarize = summarize
        self.first_chunk_at: float | None = None
        self._raw: list[bytes] = []

    def feed(self, chunk: bytes) -> bytes:
        if self.first_chunk_at is None and self.marker in chunk:
            self.first_chunk_at = time.time()
        self._raw.append(chunk)
        return chunk

    def flush(self) -> bytes:
        return b""

    def summary(self) -> Summary:
        return self._summarize(b"".join(self._raw))

    @property
    def ended(self) -> bool:
        """The format's terminal event has passed: a client that hangs up now got the whole answer."""
        tail = b"".join(self._raw[-2:])
        return any(m in tail for m in self.end_markers)


def event_tap(
    marker: bytes, end_markers: tuple[bytes, ...], summarize: Callable[[bytes], Summary]
) -> Callable[[bool], Tap]:
    """A row's `tap` for a format the gateway adds nothing to (only chat streams get usage stripped)."""
    return lambda _strip_usage: EventTap(marker, end_markers, summarize)


def sse_events(raw: bytes) -> Iterator[dict[str, Any]]:
    """The JSON objects of an SSE stream's `data:` lines."""
    for line in raw.split(b"\n"):
        if line.startswith(b"data:"):
            try:
                obj = jsoncodec.loads(line[5:])
            except ValueError:
                continue
            if isinstance(obj, dict):
                yield obj


def load_object(raw: bytes) -> dict[str, Any] | None:
    try:
        obj = jsoncodec.loads(raw)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def invalid_json() -> Summary:
    return Summary(output=None, usage=Usage(), finish_reason=None, error="upstream returned invalid JSON")


def openai_stream_error(exc: GatewayError) -> bytes:
    return b"data: " + json.dumps(exc.openai_body()).encode() + b"\n\n"


def unchanged(body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Anthropic's `metadata` (user_id) is the upstream's own: the body goes up as sent."""
    return body, False


def without_metadata(body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """On OpenAI's APIs `metadata` is the gateway's (trace metadata) unless the client asked OpenAI to store
    the completion, because OpenAI rejects `metadata` without `store`."""
    if "metadata" not in body or body.get("store"):
        return body, False
    return {k: v for k, v in body.items() if k != "metadata"}, False


def messages_input(body: dict[str, Any]) -> Any:
    """Chat and Messages: the messages, with the system prompt and tools when there are any."""
    messages = body.get("messages")
    extra = {k: body[k] for k in ("system", "tools") if body.get(k)}
    return {"messages": messages, **extra} if extra else messages


def check_common_types(body: dict[str, Any]) -> dict[str, Any]:
    """`stream` a boolean and `tools` an array wherever they appear: anything else is the client's error (a
    `"tools": true` reached the mock's and the providers' loops and came back as a 500)."""
    if "stream" in body and not isinstance(body["stream"], bool | None):
        raise InvalidRequest("Invalid type for 'stream': expected a boolean", param="stream", code="invalid_type")
    if "tools" in body and not isinstance(body["tools"], list | None):
        raise InvalidRequest("Invalid type for 'tools': expected an array", param="tools", code="invalid_type")
    return body


def validate_input(body: Any) -> dict[str, Any]:
    """Responses and embeddings: a model and an `input`."""
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object", code="invalid_type")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        code = "missing_required_parameter" if model is None else "invalid_type"
        raise InvalidRequest("Missing or invalid parameter: 'model' (a non-empty string)", param="model", code=code)
    if body.get("input") is None and not body.get("previous_response_id"):
        raise InvalidRequest("Missing required parameter: 'input'", param="input", code="missing_required_parameter")
    return check_common_types(body)
