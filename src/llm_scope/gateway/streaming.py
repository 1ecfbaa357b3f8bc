"""The tap: observe an OpenAI-format answer as it passes, without holding it up.

Forwarding a chunk costs a list append; the answer is parsed once, after the client has it, to build
the trace (output, usage, finish reason). Only when the gateway itself asked the upstream for usage
does the tap work per event, to hand the client exactly the stream it asked for.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from .. import jsoncodec
from ..accounting.usage import openai_usage
from ..types import Usage

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")  # SSE allows all three line endings
_USAGE_NULLS = (b',"usage":null', b', "usage": null')


@dataclass
class Summary:
    output: dict[str, Any] | None
    usage: Usage
    finish_reason: str | None
    error: str | None = None


class ChatStreamTap:
    def __init__(self, *, strip_usage: bool) -> None:
        self.strip_usage = strip_usage
        self.first_chunk_at: float | None = None
        self._raw: list[bytes] = []
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        """Return what the client should get for this chunk (the chunk itself unless stripping)."""
        if self.first_chunk_at is None:
            self.first_chunk_at = time.time()
        self._raw.append(chunk)
        if not self.strip_usage:
            return chunk
        data = self._pending + chunk
        out: list[bytes] = []
        start = 0
        for end in _EVENT_END.finditer(data):
            if end.start() > start:
                out.append(_strip_event(data[start : end.start()], end.group()))
            start = end.end()
        self._pending = data[start:]
        return b"".join(out)

    def flush(self) -> bytes:
        rest, self._pending = self._pending, b""
        return _strip_event(rest.rstrip(b"\r\n"), b"\n\n") if rest.strip() else b""

    def summary(self) -> Summary:
        return summarize_sse(b"".join(self._raw))

    @property
    def ended(self) -> bool:
        """The terminal `data: [DONE]` has passed: a client that hangs up now got the whole answer."""
        return b"[DONE]" in b"".join(self._raw[-2:])


def _strip_event(event: bytes, end: bytes) -> bytes:
    """Drop the usage-only event the client did not ask for and the `"usage":null` fields it implies."""
    if b'"usage"' not in event:
        return event + end
    if b'"usage":{' in event or b'"usage": {' in event:  # only the usage event carries an object: parse it
        payload = event.partition(b"data:")[2].strip()
        if payload.startswith(b"{"):
            try:
                obj = jsoncodec.loads(payload)
            except ValueError:
                obj = None
            if isinstance(obj, dict) and obj.get("usage") and not obj.get("choices"):
                return b""
    for pattern in _USAGE_NULLS:
        event = event.replace(pattern, b"")
    return event + end


def summarize_sse(raw: bytes) -> Summary:
    """Join a chat-completions SSE stream into the assistant message the client assembled."""
    content: list[str] = []
    reasoning: list[str] = []
    tools: dict[int, dict[str, Any]] = {}
    usage = Usage()
    finish: str | None = None
    error: str | None = None
    role = "assistant"
    for line in raw.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if not payload or payload == b"[DONE]":
            continue
        try:
            obj = jsoncodec.loads(payload)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        if obj.get("error"):
            err = obj["error"]
            error = str(err.get("message") if isinstance(err, dict) else err)
        if obj.get("usage"):
            usage = openai_usage(obj["usage"])
        for choice in obj.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            finish = choice.get("finish_reason") or finish
            delta = choice.get("delta") or {}
            role = delta.get("role") or role
            if isinstance(delta.get("content"), str):
                content.append(delta["content"])
            for key in ("reasoning_content", "reasoning"):
                if isinstance(delta.get(key), str):
                    reasoning.append(delta[key])
            for call in delta.get("tool_calls") or ():
                _merge_tool_call(tools, call)
    message: dict[str, Any] = {"role": role, "content": "".join(content) if content or not tools else None}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if tools:
        message["tool_calls"] = [tools[i] for i in sorted(tools)]
    return Summary(output=message, usage=usage, finish_reason=finish, error=error)


def _merge_tool_call(tools: dict[int, dict[str, Any]], call: Any) -> None:
    if not isinstance(call, dict):
        return
    index = call.get("index", 0)
    slot = tools.setdefault(index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
    if call.get("id"):
        slot["id"] = call["id"]
    fn = call.get("function") or {}
    if fn.get("name"):
        slot["function"]["name"] += fn["name"]
    if fn.get("arguments"):
        slot["function"]["arguments"] += fn["arguments"]


def summarize_json(raw: bytes) -> Summary:
    """The same facts from a non-stream chat.completion body."""
    try:
        obj = jsoncodec.loads(raw)
    except ValueError:
        return Summary(output=None, usage=Usage(), finish_reason=None, error="upstream returned invalid JSON")
    if not isinstance(obj, dict):
        return Summary(output=None, usage=Usage(), finish_reason=None)
    choices = obj.get("choices")
    first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    return Summary(
        output=first.get("message"), usage=openai_usage(obj.get("usage")), finish_reason=first.get("finish_reason")
    )
