"""Anthropic Messages (`/v1/messages`): Claude Code's and the anthropic SDK's API, errors in Anthropic's shape.

Claude Code and the anthropic SDK send `anthropic-version` and `anthropic-beta`; both go upstream as sent.
First-token time is when the first `content_block_delta` passes, not when the stream opened.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

from .. import jsoncodec
from ..accounting.usage import anthropic_usage, merge
from ..errors import GatewayError, InvalidRequest
from ..types import Deployment, Usage
from .family import (
    ApiFamily,
    MockAnswer,
    Summary,
    event_tap,
    invalid_json,
    load_object,
    messages_input,
    sse_events,
    unchanged,
)
from .mocking import iterate, last_user_text, named_event, reply, tokens

FORWARDED = ("anthropic-version", "anthropic-beta")


def validate_messages(body: Any, *, need_max_tokens: bool) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: Field required (a non-empty string)", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest("messages: Field required (an array of messages)", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest(f"messages.{i}: expected an object with a string 'role'", param=f"messages.{i}")
    max_tokens = body.get("max_tokens")
    if need_max_tokens and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise InvalidRequest("max_tokens: Field required (a positive integer)", param="max_tokens")
    if "stream" in body and not isinstance(body["stream"], bool | None):
        raise InvalidRequest("stream: Input should be a valid boolean", param="stream")
    if "tools" in body and not isinstance(body["tools"], list | None):
        raise InvalidRequest("tools: Input should be a valid list", param="tools")
    return body


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
    obj = load_object(raw)
    if obj is None:
        return invalid_json()
    if "input_tokens" in obj and "content" not in obj:  # count_tokens
        return Summary(output=obj, usage=Usage(), finish_reason=None)
    return Summary(
        output={"role": "assistant", "content": obj.get("content")},
        usage=anthropic_usage(obj.get("usage")),
        finish_reason=obj.get("stop_reason"),
    )


def summarize_stream(raw: bytes) -> Summary:
    return summarize_anthropic_events(sse_events(raw))


def stream_error(exc: GatewayError) -> bytes:
    return b"event: error\ndata: " + json.dumps(exc.anthropic_body()).encode() + b"\n\n"


def _wants_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    tools = body.get("tools") or []
    messages = body.get("messages") or []
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    content = last.get("content")
    answered = isinstance(content, list) and any(
        isinstance(c, dict) and c.get("type") == "tool_result" for c in content
    )
    if tools and isinstance(tools[0], dict) and not answered and (body.get("tool_choice") or {}) != {"type": "none"}:
        return tools[0]
    return None


def mock(body: dict[str, Any], deployment: Deployment) -> MockAnswer:
    """A text answer echoing the last user message, or a tool call when tools are offered and unanswered."""
    user_text = last_user_text(body.get("messages"))
    model = str(body.get("model") or "mock")
    ident = "msg_mock" + os.urandom(8).hex()
    tool = _wants_tool(body)
    usage_in = tokens(body.get("messages", []))
    if tool is not None:
        props = (tool.get("input_schema") or {}).get("properties") or {}
        args = {name: "mock" for name in props}
        blocks: list[dict[str, Any]] = [
            {
                "type": "tool_use",
                "id": "toolu_mock_" + os.urandom(6).hex(),
                "name": tool.get("name", "tool"),
                "input": args,
            }
        ]
        stop = "tool_use"
    else:
        blocks = [{"type": "text", "text": reply(user_text)}]
        stop = "end_turn"
    usage_out = tokens(blocks)
    usage = {
        "input_tokens": usage_in,
        "output_tokens": usage_out,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    message = {
        "id": ident,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }
    if not body.get("stream"):
        return json.dumps(message).encode()
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    chunks = [named_event("message_start", {"type": "message_start", "message": start})]
    block = blocks[0]
    if block["type"] == "text":
        chunks.append(
            named_event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
        )
        chunks.append(named_event("ping", {"type": "ping"}))
        words = block["text"].split(" ")
        for i, word in enumerate(words):
            chunks.append(
                named_event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": word if i == 0 else " " + word},
                    },
                )
            )
    else:
        chunks.append(
            named_event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {**block, "input": {}}},
            )
        )
        chunks.append(
            named_event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])},
                },
            )
        )
    chunks.append(named_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
    chunks.append(
        named_event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": usage_out},
            },
        )
    )
    chunks.append(named_event("message_stop", {"type": "message_stop"}))
    return iterate(chunks)


MESSAGES = ApiFamily(
    name="messages",
    route="messages",
    paths=("/v1/messages",),
    validate=lambda body: validate_messages(body, need_max_tokens=True),
    input_of=messages_input,
    prepare=unchanged,
    summarize=summarize_anthropic_json,
    tap=event_tap(b"content_block_delta", (b"message_stop",), summarize_stream),
    stream_error=stream_error,
    mock=mock,
    upstream_path="v1/messages",
    litellm="anthropic.messages.acreate",
    genai_operation="chat",
    litellm_stream="anthropic",
    anthropic=True,
    forward=FORWARDED,
)
