"""Chat completions (`/v1/chat/completions`): OpenAI's chat format, the family most clients speak.

Everything the gateway knows about it is here: validation, the body the upstream gets (usage asked for in
streams, so every streamed call is billed; the tap strips it again when the client did not ask), the tap
that reads usage and first-token time off the answer as it passes, and the mock model's answers.

Forwarding a chunk costs a list append; the answer is parsed once, after the client has it. Only when the
gateway itself asked the upstream for usage does the tap work per event, to hand the client exactly the
stream it asked for.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from .. import jsoncodec
from ..accounting.usage import openai_usage
from ..errors import InvalidRequest
from ..types import Deployment, Usage
from .family import (
    ApiFamily,
    MockAnswer,
    Summary,
    check_common_types,
    messages_input,
    openai_stream_error,
    without_metadata,
)
from .mocking import last_user_text


def validate_chat(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object", code="invalid_type")
    model = body.get("model")
    if model is None:
        raise InvalidRequest("Missing required parameter: 'model'", param="model", code="missing_required_parameter")
    if not isinstance(model, str) or not model:
        raise InvalidRequest(
            "Invalid type for 'model': expected a non-empty string", param="model", code="invalid_type"
        )
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest(
            "Missing required parameter: 'messages'", param="messages", code="missing_required_parameter"
        )
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(
            "Invalid type for 'messages': expected a non-empty array of message objects",
            param="messages",
            code="invalid_type",
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest(
                f"Invalid value for 'messages[{i}]': expected an object with a string 'role'",
                param=f"messages[{i}]",
                code="invalid_type",
            )
    return check_common_types(body)


def prepare(body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The body as the upstream should get it, and whether the gateway added usage to a stream."""
    out, _ = without_metadata(body)
    if not body.get("stream"):
        return out, False
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        return out, False
    out = dict(out)
    out["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return out, True


_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")  # SSE allows all three line endings
_USAGE_NULLS = (b',"usage":null', b', "usage": null')


class ChatStreamTap:
    """The chat tap: first-token time on the first chunk; strips the usage event the client did not ask for."""

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


def mock(body: dict[str, Any], deployment: Deployment) -> MockAnswer:
    """The mock echoes the last user message, streams it word by word with usage, and calls the first tool
    offered (then answers in text once the tool result comes back): enough to try an agent loop."""
    model = str(body.get("model") or deployment.model_name)
    message = _answer(body)
    usage = _usage(body, message)
    ident = "chatcmpl-mock" + os.urandom(8).hex()
    created = int(time.time())
    if not body.get("stream"):
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        data = {
            "id": ident,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": usage,
            "system_fingerprint": "fp_mock",
        }
        return json.dumps(data).encode()
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    delay = float(deployment.params.get("mock_chunk_delay", 0.0))
    return _stream(ident, created, model, message, usage if include_usage else None, delay)


def _answer(body: dict[str, Any]) -> dict[str, Any]:
    messages = body.get("messages") or []
    tools = body.get("tools") or []
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    if tools and body.get("tool_choice") != "none" and last.get("role") != "tool":
        fn = (tools[0].get("function") or {}) if isinstance(tools[0], dict) else {}
        props = ((fn.get("parameters") or {}).get("properties") or {}) if isinstance(fn, dict) else {}
        args = {name: "mock" for name in props}
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_mock_" + os.urandom(6).hex(),
                    "type": "function",
                    "function": {"name": fn.get("name", "tool"), "arguments": json.dumps(args)},
                }
            ],
        }
    if last.get("role") == "tool":
        return {"role": "assistant", "content": f"The tool returned: {last.get('content')}"}
    text = last_user_text(messages)
    return {
        "role": "assistant",
        "content": f"This is the llm-scope mock model. You said: {text}"
        if text
        else "This is the llm-scope mock model.",
    }


def _usage(body: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    prompt = max(1, len(json.dumps(body.get("messages", []))) // 4)
    completion = max(1, len(json.dumps(message)) // 4)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _event(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


async def _stream(
    ident: str, created: int, model: str, message: dict[str, Any], usage: dict[str, Any] | None, delay: float
) -> AsyncIterator[bytes]:
    base = {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "fp_mock",
    }
    extra = {"usage": None} if usage is not None else {}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _event(
            {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
        )

    yield chunk({"role": "assistant", "content": ""})
    if message.get("tool_calls"):
        call = message["tool_calls"][0]
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": ""},
                    }
                ]
            }
        )
        args = call["function"]["arguments"]
        for i in range(0, len(args), 8):
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 8]}}]})
        finish = "tool_calls"
    else:
        words = str(message["content"]).split(" ")
        for i, word in enumerate(words):
            if delay:
                await asyncio.sleep(delay)
            yield chunk({"content": word if i == 0 else " " + word})
        finish = "stop"
    yield chunk({}, finish)
    if usage is not None:
        yield _event({**base, "choices": [], "usage": usage})
    yield b"data: [DONE]\n\n"


CHAT = ApiFamily(
    name="chat",
    route="chat_completion",
    paths=("/v1/chat/completions", "/chat/completions"),
    validate=validate_chat,
    input_of=messages_input,
    prepare=prepare,
    summarize=summarize_json,
    tap=lambda strip_usage: ChatStreamTap(strip_usage=strip_usage),
    stream_error=openai_stream_error,
    mock=mock,
    upstream_path="chat/completions",
    litellm="acompletion",
    genai_operation="chat",
    litellm_stream="chat",
)
