"""A Reply as OpenAI chat, OpenAI Responses and Anthropic Messages bodies and SSE streams.

Shapes follow the providers' documented events closely enough for the official SDKs and the real CLIs
(Codex parses Responses events strictly; Claude Code the Messages events). Token counts are a simple
deterministic estimate, so the gateway's usage accounting has non-zero numbers to carry.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

from .script import Json, Reply

CREATED = int(time.time())


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def estimate_tokens(body: Json) -> int:
    return max(1, len(json.dumps(body)) // 4)


def output_tokens(reply: Reply) -> int:
    n = len(reply.text.split())
    if reply.tool is not None:
        n += len(json.dumps(reply.tool.arguments)) // 4 + 1
    return max(1, n)


def _pieces(text: str, size: int = 3) -> list[str]:
    words = re.findall(r"\s*\S+\s*", text) or [text]
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


def sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


# ---------------------------------------------------------------- OpenAI chat completions


def chat_usage(body: Json, reply: Reply) -> Json:
    prompt, completion = estimate_tokens(body), output_tokens(reply)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def chat_body(body: Json, reply: Reply) -> Json:
    message: Json = {"role": "assistant", "content": reply.text or None}
    finish = "stop"
    if reply.tool is not None:
        message["tool_calls"] = [
            {
                "id": _id("call"),
                "type": "function",
                "function": {"name": reply.tool.name, "arguments": json.dumps(reply.tool.arguments)},
            }
        ]
        finish = "tool_calls"
    return {
        "id": _id("chatcmpl"),
        "object": "chat.completion",
        "created": CREATED,
        "model": body.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": chat_usage(body, reply),
    }


def chat_stream(body: Json, reply: Reply) -> list[bytes]:
    rid, model = _id("chatcmpl"), body.get("model")

    def chunk(delta: Json, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return sse(
            {"id": rid, "object": "chat.completion.chunk", "created": CREATED, "model": model, "choices": [choice]}
        )

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": piece}) for piece in (_pieces(reply.text) if reply.text else [])]
    finish = "stop"
    if reply.tool is not None:
        args = json.dumps(reply.tool.arguments)
        head = {
            "index": 0,
            "id": _id("call"),
            "type": "function",
            "function": {"name": reply.tool.name, "arguments": ""},
        }
        out.append(chunk({"tool_calls": [head]}))
        half = len(args) // 2
        for part in (args[:half], args[half:]):
            out.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}))
        finish = "tool_calls"
    out.append(chunk({}, finish))
    options = body.get("stream_options") or {}
    if options.get("include_usage"):
        usage: Json = {"id": rid, "object": "chat.completion.chunk", "created": CREATED, "model": model, "choices": []}
        out.append(sse({**usage, "usage": chat_usage(body, reply)}))
    out.append(b"data: [DONE]\n\n")
    return out


# ---------------------------------------------------------------- Anthropic Messages


def messages_usage(body: Json, reply: Reply | None = None) -> Json:
    usage: Json = {
        "input_tokens": estimate_tokens(body),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    if reply is not None:
        usage["output_tokens"] = output_tokens(reply)
    return usage


def _messages_content(reply: Reply) -> list[Json]:
    content: list[Json] = []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    if reply.tool is not None:
        content.append({"type": "tool_use", "id": _id("toolu"), "name": reply.tool.name, "input": reply.tool.arguments})
    return content


def messages_body(body: Json, reply: Reply) -> Json:
    return {
        "id": _id("msg"),
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": _messages_content(reply),
        "stop_reason": "tool_use" if reply.tool else "end_turn",
        "stop_sequence": None,
        "usage": messages_usage(body, reply),
    }


def messages_stream(body: Json, reply: Reply) -> list[bytes]:
    start = {**messages_body(body, reply), "content": [], "stop_reason": None}
    start["usage"] = {**messages_usage(body), "output_tokens": 1}
    out = [sse({"type": "message_start", "message": start}, "message_start"), sse({"type": "ping"}, "ping")]
    for index, block in enumerate(_messages_content(reply)):
        opening: Json
        deltas: list[Json]
        if block["type"] == "text":
            opening, deltas = (
                {"type": "text", "text": ""},
                [{"type": "text_delta", "text": piece} for piece in _pieces(block["text"])],
            )
        else:
            args = json.dumps(block["input"])
            half = len(args) // 2
            opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": part} for part in (args[:half], args[half:])]
        out.append(
            sse({"type": "content_block_start", "index": index, "content_block": opening}, "content_block_start")
        )
        for delta in deltas:
            out.append(sse({"type": "content_block_delta", "index": index, "delta": delta}, "content_block_delta"))
        out.append(sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
    stop: Json = {"stop_reason": "tool_use" if reply.tool else "end_turn", "stop_sequence": None}
    usage = {"output_tokens": output_tokens(reply)}
    out.append(sse({"type": "message_delta", "delta": stop, "usage": usage}, "message_delta"))
    out.append(sse({"type": "message_stop"}, "message_stop"))
    return out


# ---------------------------------------------------------------- OpenAI Responses


def responses_usage(body: Json, reply: Reply) -> Json:
    prompt, completion = estimate_tokens(body), output_tokens(reply)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def _responses_items(reply: Reply) -> list[Json]:
    items: list[Json] = []
    if reply.text:
        items.append(
            {
                "id": _id("msg"),
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}],
            }
        )
    if reply.tool is not None:
        call_id = _id("call")
        if reply.tool.kind == "local_shell":
            items.append(
                {
                    "id": _id("lsh"),
                    "type": "local_shell_call",
                    "call_id": call_id,
                    "status": "completed",
                    "action": {"type": "exec", "command": reply.tool.arguments["command"], "env": {}},
                }
            )
        else:
            items.append(
                {
                    "id": _id("fc"),
                    "type": "function_call",
                    "status": "completed",
                    "call_id": call_id,
                    "name": reply.tool.name,
                    "arguments": json.dumps(reply.tool.arguments),
                }
            )
    return items


def responses_body(body: Json, reply: Reply, items: list[Json] | None = None, status: str = "completed") -> Json:
    out: Json = {
        "id": _id("resp"),
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "model": body.get("model"),
        "output": _responses_items(reply) if items is None else items,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "usage": responses_usage(body, reply) if status == "completed" else None,
    }
    return out


def responses_stream(body: Json, reply: Reply) -> list[bytes]:
    final = responses_body(body, reply)
    seq = 0
    out: list[bytes] = []

    def emit(kind: str, data: Json) -> None:
        nonlocal seq
        out.append(sse({"type": kind, "sequence_number": seq, **data}, kind))
        seq += 1

    pending = {**final, "status": "in_progress", "output": [], "usage": None}
    emit("response.created", {"response": pending})
    emit("response.in_progress", {"response": pending})
    for index, item in enumerate(final["output"]):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            emit(
                "response.output_item.added",
                {"output_index": index, "item": {**item, "status": "in_progress", "content": []}},
            )
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            emit(
                "response.content_part.added",
                {"item_id": item["id"], "output_index": index, "content_index": 0, "part": part},
            )
            for piece in _pieces(text):
                emit(
                    "response.output_text.delta",
                    {"item_id": item["id"], "output_index": index, "content_index": 0, "delta": piece, "logprobs": []},
                )
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            emit("response.output_text.done", {**where, "text": text, "logprobs": []})
            emit("response.content_part.done", {**where, "part": item["content"][0]})
        elif item["type"] == "function_call":
            emit(
                "response.output_item.added",
                {"output_index": index, "item": {**item, "status": "in_progress", "arguments": ""}},
            )
            args = item["arguments"]
            half = len(args) // 2
            for part in (args[:half], args[half:]):
                emit(
                    "response.function_call_arguments.delta",
                    {"item_id": item["id"], "output_index": index, "delta": part},
                )
            emit(
                "response.function_call_arguments.done",
                {"item_id": item["id"], "output_index": index, "arguments": args},
            )
        else:
            emit("response.output_item.added", {"output_index": index, "item": item})
        emit("response.output_item.done", {"output_index": index, "item": item})
    emit("response.completed", {"response": final})
    return out
