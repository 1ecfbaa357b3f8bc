"""A built-in model that answers like OpenAI, so the first run needs no keys and no network.

It echoes the last user message, streams in several chunks with usage, and calls a tool when the
request offers tools (then answers in text once the tool result comes back), which is enough to try an
IDE's agent loop end to end.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from ..types import Deployment
from .base import ApiName, CallOptions, UpstreamResponse
from .mock_formats import mock_count_tokens, mock_embeddings, mock_messages, mock_responses


class MockProvider:
    async def aclose(self) -> None:
        return None

    async def call(
        self, api: ApiName, deployment: Deployment, body: dict[str, Any], options: CallOptions
    ) -> UpstreamResponse:
        if api == "messages":
            return mock_messages(body, _last_user_text(body.get("messages")))
        if api == "count_tokens":
            return mock_count_tokens(body)
        if api == "responses":
            return mock_responses(body)
        if api == "embeddings":
            return mock_embeddings(body)
        return await self.chat(deployment, body)

    async def chat(self, deployment: Deployment, body: dict[str, Any]) -> UpstreamResponse:
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
            return UpstreamResponse(headers={"content-type": "application/json"}, body=json.dumps(data).encode())
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        delay = float(deployment.params.get("mock_chunk_delay", 0.0))
        chunks = _stream(ident, created, model, message, usage if include_usage else None, delay)
        return UpstreamResponse(headers={"content-type": "text/event-stream"}, chunks=chunks)


def _last_user_text(messages: Any) -> str:
    for msg in reversed(messages if isinstance(messages, list) else []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


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
    text = _last_user_text(messages)
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
