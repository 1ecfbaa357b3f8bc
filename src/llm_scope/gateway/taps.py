"""Taps for the non-chat formats: Anthropic Messages and OpenAI Responses streams, and whole bodies.

Same contract as the chat tap: forwarding is an append; parsing happens once, after the client has the
answer. First-token time is when the first content delta passes, not when the stream opened.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from .. import jsoncodec
from ..accounting.usage import anthropic_usage, merge, openai_usage, responses_usage
from ..types import Usage
from .streaming import Summary, summarize_json


class EventTap:
    """Relays SSE bytes untouched and remembers them; `marker` is the first-token event name."""

    end_markers: tuple[bytes, ...] = ()

    def __init__(self, marker: bytes) -> None:
        self.marker = marker
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
        raise NotImplementedError

    @property
    def ended(self) -> bool:
        """The format's terminal event has passed: a client that hangs up now got the whole answer."""
        tail = b"".join(self._raw[-2:])
        return any(m in tail for m in self.end_markers)

    def events(self) -> Iterator[dict[str, Any]]:
        for line in b"".join(self._raw).split(b"\n"):
            if line.startswith(b"data:"):
                try:
                    obj = jsoncodec.loads(line[5:])
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    yield obj


class AnthropicTap(EventTap):
    end_markers = (b"message_stop",)

    def __init__(self) -> None:
        super().__init__(b"content_block_delta")

    def summary(self) -> Summary:
        return summarize_anthropic_events(self.events())


class ResponsesTap(EventTap):
    end_markers = (b"response.completed", b"response.incomplete", b"response.failed")

    def __init__(self) -> None:
        super().__init__(b".delta")

    def summary(self) -> Summary:
        final: dict[str, Any] | None = None
        error: str | None = None
        for event in self.events():
            kind = event.get("type")
            if kind in ("response.completed", "response.incomplete", "response.failed"):
                final = event.get("response")
            elif kind == "error":
                error = str(event.get("message") or event.get("error"))
        summary = summarize_response_object(final or {})
        summary.error = error or summary.error
        return summary


def summarize_anthropic_events(events: Iterator[dict[str, Any]]) -> Summary:
    blocks: dict[int, dict[str, Any]] = {}
    partial_json: dict[int, str] = {}
    usage = Usage()
    stop: str | None = None
    error: str | None = None
    for event in events:
        kind = event.get("type")
        if kind == "message_start":
            usage = merge(usage, anthropic_usage((event.get("message") or {}).get("usage")))
        elif kind == "content_block_start":
            blocks[int(event.get("index", 0))] = dict(event.get("content_block") or {})
        elif kind == "content_block_delta":
            index, delta = int(event.get("index", 0)), event.get("delta") or {}
            block = blocks.setdefault(index, {"type": "text", "text": ""})
            if delta.get("type") == "text_delta":
                block["text"] = block.get("text", "") + str(delta.get("text", ""))
            elif delta.get("type") == "input_json_delta":
                partial_json[index] = partial_json.get(index, "") + str(delta.get("partial_json", ""))
            elif delta.get("type") == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + str(delta.get("thinking", ""))
        elif kind == "message_delta":
            stop = (event.get("delta") or {}).get("stop_reason") or stop
            usage = merge(usage, anthropic_usage(event.get("usage")))
        elif kind == "error":
            err = event.get("error") or {}
            error = str(err.get("message") if isinstance(err, dict) else err)
    for index, text in partial_json.items():
        try:
            blocks[index]["input"] = jsoncodec.loads(text) if text else {}
        except ValueError:
            blocks[index]["input"] = text
    content = [blocks[i] for i in sorted(blocks)]
    return Summary(output={"role": "assistant", "content": content}, usage=usage, finish_reason=stop, error=error)


def summarize_anthropic_json(raw: bytes) -> Summary:
    obj = _load(raw)
    if obj is None:
        return Summary(output=None, usage=Usage(), finish_reason=None, error="upstream returned invalid JSON")
    if "input_tokens" in obj and "content" not in obj:  # count_tokens
        return Summary(output=obj, usage=Usage(), finish_reason=None)
    return Summary(
        output={"role": "assistant", "content": obj.get("content")},
        usage=anthropic_usage(obj.get("usage")),
        finish_reason=obj.get("stop_reason"),
    )


def summarize_response_object(obj: dict[str, Any]) -> Summary:
    error = obj.get("error")
    return Summary(
        output=obj.get("output"),
        usage=responses_usage(obj.get("usage")),
        finish_reason=obj.get("status"),
        error=str(error.get("message")) if isinstance(error, dict) else None,
    )


def summarize_responses_json(raw: bytes) -> Summary:
    obj = _load(raw)
    if obj is None:
        return Summary(output=None, usage=Usage(), finish_reason=None, error="upstream returned invalid JSON")
    return summarize_response_object(obj)


def summarize_embeddings_json(raw: bytes) -> Summary:
    """Vectors are not worth storing; the trace keeps how many and how long."""
    obj = _load(raw)
    if obj is None:
        return Summary(output=None, usage=Usage(), finish_reason=None, error="upstream returned invalid JSON")
    data = obj.get("data") or []
    first = data[0].get("embedding") if data and isinstance(data[0], dict) else None
    dims = len(first) if isinstance(first, list) else None
    return Summary(
        output={"embeddings": len(data), "dimensions": dims}, usage=openai_usage(obj.get("usage")), finish_reason=None
    )


def _load(raw: bytes) -> dict[str, Any] | None:
    try:
        obj = jsoncodec.loads(raw)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


WHOLE_BODY = {
    "chat": summarize_json,
    "messages": summarize_anthropic_json,
    "count_tokens": summarize_anthropic_json,
    "responses": summarize_responses_json,
    "embeddings": summarize_embeddings_json,
}
