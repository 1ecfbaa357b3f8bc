"""The mock model's answers in Anthropic Messages, OpenAI Responses and Embeddings formats.

Realistic enough for real clients (the anthropic SDK, Claude Code, Codex) to parse: same event names,
same usage fields, a tool call when tools are offered and no tool result has come back yet.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

from .base import UpstreamResponse

PREFIX = "This is the llm-scope mock model."


def _reply(text: str) -> str:
    return f"{PREFIX} You said: {text}" if text else PREFIX


def _tokens(value: Any) -> int:
    return max(1, len(json.dumps(value)) // 4)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _iterate(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


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


def mock_messages(body: dict[str, Any], user_text: str) -> UpstreamResponse:
    model = str(body.get("model") or "mock")
    ident = "msg_mock" + os.urandom(8).hex()
    tool = _wants_tool(body)
    usage_in = _tokens(body.get("messages", []))
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
        blocks = [{"type": "text", "text": _reply(user_text)}]
        stop = "end_turn"
    usage_out = _tokens(blocks)
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
        return UpstreamResponse(headers={"content-type": "application/json"}, body=json.dumps(message).encode())
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    chunks = [_sse("message_start", {"type": "message_start", "message": start})]
    block = blocks[0]
    if block["type"] == "text":
        chunks.append(
            _sse(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
        )
        chunks.append(_sse("ping", {"type": "ping"}))
        words = block["text"].split(" ")
        for i, word in enumerate(words):
            chunks.append(
                _sse(
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
            _sse(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {**block, "input": {}}},
            )
        )
        chunks.append(
            _sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])},
                },
            )
        )
    chunks.append(_sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
    chunks.append(
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": usage_out},
            },
        )
    )
    chunks.append(_sse("message_stop", {"type": "message_stop"}))
    return UpstreamResponse(headers={"content-type": "text/event-stream"}, chunks=_iterate(chunks))


def mock_count_tokens(body: dict[str, Any]) -> UpstreamResponse:
    count = _tokens([body.get("system"), body.get("messages"), body.get("tools")])
    return UpstreamResponse(
        headers={"content-type": "application/json"}, body=json.dumps({"input_tokens": count}).encode()
    )


def _responses_input_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    for item in reversed(value if isinstance(value, list) else []):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    return ""


def mock_responses(body: dict[str, Any]) -> UpstreamResponse:
    model = str(body.get("model") or "mock")
    ident = "resp_mock" + os.urandom(8).hex()
    created = int(time.time())
    text = _reply(_responses_input_text(body.get("input")))
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]
    given = body.get("input")
    last = given[-1] if isinstance(given, list) and given else {}
    if tools and not (isinstance(last, dict) and last.get("type") == "function_call_output"):
        props = (tools[0].get("parameters") or {}).get("properties") or {}
        item: dict[str, Any] = {
            "type": "function_call",
            "id": "fc_mock" + os.urandom(6).hex(),
            "call_id": "call_mock" + os.urandom(6).hex(),
            "name": tools[0].get("name", "tool"),
            "arguments": json.dumps({k: "mock" for k in props}),
            "status": "completed",
        }
    else:
        item = {
            "type": "message",
            "id": "msg_mock" + os.urandom(6).hex(),
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
    usage_in, usage_out = _tokens(body.get("input")), _tokens(item)
    usage = {
        "input_tokens": usage_in,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage_out,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage_in + usage_out,
    }
    response = {
        "id": ident,
        "object": "response",
        "created_at": created,
        "status": "completed",
        "model": model,
        "output": [item],
        "usage": usage,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": tools,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "text": {"format": {"type": "text"}},
    }
    if not body.get("stream"):
        return UpstreamResponse(headers={"content-type": "application/json"}, body=json.dumps(response).encode())
    seq = iter(range(1000))
    pending = {**response, "status": "in_progress", "output": [], "usage": None}
    chunks = [
        _sse("response.created", {"type": "response.created", "sequence_number": next(seq), "response": pending}),
        _sse(
            "response.in_progress", {"type": "response.in_progress", "sequence_number": next(seq), "response": pending}
        ),
    ]
    if item["type"] == "message":
        empty = {**item, "status": "in_progress", "content": []}
        chunks.append(
            _sse(
                "response.output_item.added",
                {"type": "response.output_item.added", "output_index": 0, "sequence_number": next(seq), "item": empty},
            )
        )
        part = {"type": "output_text", "text": "", "annotations": []}
        chunks.append(
            _sse(
                "response.content_part.added",
                {
                    "type": "response.content_part.added",
                    "item_id": item["id"],
                    "output_index": 0,
                    "content_index": 0,
                    "sequence_number": next(seq),
                    "part": part,
                },
            )
        )
        for i, word in enumerate(text.split(" ")):
            chunks.append(
                _sse(
                    "response.output_text.delta",
                    {
                        "type": "response.output_text.delta",
                        "item_id": item["id"],
                        "output_index": 0,
                        "content_index": 0,
                        "delta": word if i == 0 else " " + word,
                        "sequence_number": next(seq),
                        "logprobs": [],
                    },
                )
            )
        chunks.append(
            _sse(
                "response.output_text.done",
                {
                    "type": "response.output_text.done",
                    "item_id": item["id"],
                    "output_index": 0,
                    "content_index": 0,
                    "text": text,
                    "sequence_number": next(seq),
                    "logprobs": [],
                },
            )
        )
        chunks.append(
            _sse(
                "response.content_part.done",
                {
                    "type": "response.content_part.done",
                    "item_id": item["id"],
                    "output_index": 0,
                    "content_index": 0,
                    "sequence_number": next(seq),
                    "part": item["content"][0],
                },
            )
        )
    else:
        chunks.append(
            _sse(
                "response.output_item.added",
                {
                    "type": "response.output_item.added",
                    "output_index": 0,
                    "sequence_number": next(seq),
                    "item": {**item, "arguments": "", "status": "in_progress"},
                },
            )
        )
        chunks.append(
            _sse(
                "response.function_call_arguments.delta",
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": item["id"],
                    "output_index": 0,
                    "delta": item["arguments"],
                    "sequence_number": next(seq),
                },
            )
        )
        chunks.append(
            _sse(
                "response.function_call_arguments.done",
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item["id"],
                    "output_index": 0,
                    "arguments": item["arguments"],
                    "sequence_number": next(seq),
                },
            )
        )
    chunks.append(
        _sse(
            "response.output_item.done",
            {"type": "response.output_item.done", "output_index": 0, "sequence_number": next(seq), "item": item},
        )
    )
    chunks.append(
        _sse("response.completed", {"type": "response.completed", "sequence_number": next(seq), "response": response})
    )
    return UpstreamResponse(headers={"content-type": "text/event-stream"}, chunks=_iterate(chunks))


def _vector(text: str, dims: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest() * (dims // 32 + 1)
    return [round((b - 128) / 128, 4) for b in digest[:dims]]


def mock_embeddings(body: dict[str, Any]) -> UpstreamResponse:
    inputs = body.get("input")
    items = inputs if isinstance(inputs, list) else [inputs]
    dims = int(body.get("dimensions") or 16)
    data = []
    for i, item in enumerate(items):
        vector = _vector(json.dumps(item), dims)
        if body.get("encoding_format") == "base64":
            encoded: Any = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        else:
            encoded = vector
        data.append({"object": "embedding", "index": i, "embedding": encoded})
    tokens = _tokens(inputs)
    out = {
        "object": "list",
        "data": data,
        "model": str(body.get("model") or "mock"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return UpstreamResponse(headers={"content-type": "application/json"}, body=json.dumps(out).encode())
