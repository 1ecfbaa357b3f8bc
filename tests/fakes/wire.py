"""Payload builders for the fake upstream, kept apart from the server so the wire shapes are easy to audit.

Every builder is a pure function of the request body, so a test can compute the exact bytes the fake will
send (reply text, token counts, chunk boundaries) and compare them with what the gateway passed through.

Deterministic numbers (import them instead of hard-coding):

* prompt side: ``FAKE_PROMPT_TOKENS`` (OpenAI ``prompt_tokens``, Anthropic ``input_tokens``, Responses
  ``input_tokens``), ``FAKE_CACHED_TOKENS`` (OpenAI ``prompt_tokens_details.cached_tokens``, Anthropic
  ``cache_read_input_tokens``), ``FAKE_CACHE_CREATION_TOKENS`` (Anthropic ``cache_creation_input_tokens``).
* completion side: the number of whitespace-separated words of the reply (see ``fake_reply`` and
  ``word_count``), or ``FAKE_TOOL_COMPLETION_TOKENS`` for a tool call; ``FAKE_REASONING_TOKENS`` is 0.
* ``max_tokens`` / ``max_completion_tokens`` / ``max_output_tokens`` smaller than the reply truncate it to
  that many words with finish_reason ``length`` / stop_reason ``max_tokens`` / status ``incomplete``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

FAKE_PROMPT_TOKENS = 12
FAKE_CACHED_TOKENS = 2
FAKE_CACHE_CREATION_TOKENS = 3
FAKE_REASONING_TOKENS = 0
FAKE_TOOL_COMPLETION_TOKENS = 7
FAKE_CREATED = 1_700_000_000
FAKE_REPLY_PREFIX = "Hello from fake upstream:"
FAKE_TOOL_CALL_ID = "call_fake_1"
FAKE_TOOL_USE_ID = "toolu_fake_1"
FAKE_TOOL_INPUT: dict[str, Any] = {"city": "Paris"}
FAKE_TOOL_ARGUMENTS = json.dumps(FAKE_TOOL_INPUT)
FAKE_SYSTEM_FINGERPRINT = "fp_fake"

Json = dict[str, Any]


def word_count(text: str) -> int:
    return len(text.split())


def fake_reply(user_text: str) -> str:
    """The fake's whole answer for a given last user text."""
    return f"{FAKE_REPLY_PREFIX} {user_text}".rstrip()


def split_chunks(text: str, n: int) -> list[str]:
    """Split at word boundaries into at most n pieces whose concatenation is exactly `text`."""
    words = re.findall(r"\s*\S+\s*", text) or [text]
    n = max(1, min(n, len(words)))
    size, extra = divmod(len(words), n)
    pieces, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        pieces.append("".join(words[start:end]))
        start = end
    return pieces


def _parts_text(content: Any, part_types: tuple[str, ...]) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") in part_types]
        return " ".join(t for t in texts if t)
    return ""


def last_user_text(messages: Any, part_types: tuple[str, ...] = ("text",)) -> str:
    """Text of the most recent user turn that has any text (tool results alone do not count)."""
    for msg in reversed(messages if isinstance(messages, list) else []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            text = _parts_text(msg.get("content"), part_types)
            if text:
                return text
    return ""


@dataclass(frozen=True)
class Answer:
    """What the fake decided to say, independent of the wire format it is rendered into."""

    text: str | None
    tool_name: str | None
    finish: str  # "stop" | "length" | "tool_calls"
    completion_tokens: int


def decide_answer(user_text: str, tool_name: str | None, max_tokens: Any) -> Answer:
    if tool_name is not None:
        return Answer(None, tool_name, "tool_calls", FAKE_TOOL_COMPLETION_TOKENS)
    text = fake_reply(user_text)
    if isinstance(max_tokens, int) and 0 < max_tokens < word_count(text):
        text = "".join(re.findall(r"\S+\s*", text)[:max_tokens]).rstrip()
        return Answer(text, None, "length", word_count(text))
    return Answer(text, None, "stop", word_count(text))


def sse(data: Any, event: str | None = None) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"


# --------------------------------------------------------------------------------------------- OpenAI chat


def openai_chat_answer(body: Json) -> Answer:
    messages = body.get("messages") or []
    last_role = messages[-1].get("role") if messages and isinstance(messages[-1], dict) else None
    tools = body.get("tools") or []
    tool_name = None
    if tools and last_role != "tool":
        tool_name = (tools[0].get("function") or {}).get("name", "tool")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    return decide_answer(last_user_text(messages), tool_name, max_tokens)


def openai_usage(completion_tokens: int) -> Json:
    return {
        "prompt_tokens": FAKE_PROMPT_TOKENS,
        "completion_tokens": completion_tokens,
        "total_tokens": FAKE_PROMPT_TOKENS + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": FAKE_CACHED_TOKENS, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": FAKE_REASONING_TOKENS,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _tool_call(name: str) -> Json:
    return {"id": FAKE_TOOL_CALL_ID, "type": "function", "function": {"name": name, "arguments": ""}}


def openai_chat_completion(rid: str, model: str, answer: Answer) -> Json:
    message: Json = {"role": "assistant", "content": answer.text, "refusal": None, "annotations": []}
    if answer.tool_name is not None:
        call = _tool_call(answer.tool_name)
        call["function"]["arguments"] = FAKE_TOOL_ARGUMENTS
        message["tool_calls"] = [call]
    return {
        "id": rid,
        "object": "chat.completion",
        "created": FAKE_CREATED,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": answer.finish}],
        "usage": openai_usage(answer.completion_tokens),
        "service_tier": "default",
        "system_fingerprint": FAKE_SYSTEM_FINGERPRINT,
    }


def openai_chat_stream(rid: str, model: str, answer: Answer, n_chunks: int, include_usage: bool) -> list[str]:
    """SSE frames as OpenAI sends them, ending with ``data: [DONE]``."""

    def chunk(delta: Json, finish: str | None = None) -> str:
        data: Json = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": FAKE_CREATED,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": FAKE_SYSTEM_FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            data["usage"] = None
        return sse(data)

    if answer.tool_name is not None:
        frames = [
            chunk(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"index": 0, **_tool_call(answer.tool_name)}],
                    "refusal": None,
                }
            )
        ]
        size = -(-len(FAKE_TOOL_ARGUMENTS) // max(1, n_chunks))
        for i in range(0, len(FAKE_TOOL_ARGUMENTS), size):
            fragment = FAKE_TOOL_ARGUMENTS[i : i + size]
            frames.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]}))
    else:
        frames = [chunk({"role": "assistant", "content": "", "refusal": None})]
        frames += [chunk({"content": piece}) for piece in split_chunks(answer.text or "", n_chunks)]
    frames.append(chunk({}, answer.finish))
    if include_usage:
        final = json.loads(frames[-1][len("data: ") :])
        final.update(choices=[], usage=openai_usage(answer.completion_tokens))
        frames.append(sse(final))
    frames.append(sse("[DONE]"))
    return frames


def openai_error(status: int) -> Json:
    kinds = {
        400: ("invalid_request_error", None),
        401: ("invalid_request_error", "invalid_api_key"),
        403: ("permission_denied", None),
        404: ("invalid_request_error", "model_not_found"),
        429: ("requests", "rate_limit_exceeded"),
    }
    err_type, code = kinds.get(status, ("server_error", None))
    return {"error": {"message": f"fake upstream says {status}", "type": err_type, "param": None, "code": code}}


# ----------------------------------------------------------------------------------------------- Anthropic


def anthropic_answer(body: Json) -> Answer:
    messages = body.get("messages") or []
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    content = last.get("content")
    has_result = isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )
    tools = body.get("tools") or []
    tool_name = tools[0].get("name", "tool") if tools and not has_result else None
    return decide_answer(last_user_text(messages), tool_name, body.get("max_tokens"))


_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def anthropic_usage(output_tokens: int) -> Json:
    return {
        "input_tokens": FAKE_PROMPT_TOKENS,
        "cache_creation_input_tokens": FAKE_CACHE_CREATION_TOKENS,
        "cache_read_input_tokens": FAKE_CACHED_TOKENS,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def anthropic_message(rid: str, model: str, answer: Answer) -> Json:
    if answer.tool_name is not None:
        block: Json = {
            "type": "tool_use",
            "id": FAKE_TOOL_USE_ID,
            "name": answer.tool_name,
            "input": FAKE_TOOL_INPUT,
        }
    else:
        block = {"type": "text", "text": answer.text}
    return {
        "id": rid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [block],
        "stop_reason": _STOP_REASONS[answer.finish],
        "stop_sequence": None,
        "usage": anthropic_usage(answer.completion_tokens),
    }


def anthropic_stream(rid: str, model: str, answer: Answer, n_chunks: int) -> list[str]:
    start = anthropic_message(rid, model, answer)
    start.update(content=[], stop_reason=None, usage=anthropic_usage(1))
    if answer.tool_name is not None:
        block: Json = {"type": "tool_use", "id": FAKE_TOOL_USE_ID, "name": answer.tool_name, "input": {}}
        size = -(-len(FAKE_TOOL_ARGUMENTS) // max(1, n_chunks))
        parts = [""] + [FAKE_TOOL_ARGUMENTS[i : i + size] for i in range(0, len(FAKE_TOOL_ARGUMENTS), size)]
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in parts]
    else:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in split_chunks(answer.text or "", n_chunks)]
    frames = [
        sse({"type": "message_start", "message": start}, "message_start"),
        sse({"type": "content_block_start", "index": 0, "content_block": block}, "content_block_start"),
        sse({"type": "ping"}, "ping"),
    ]
    frames += [sse({"type": "content_block_delta", "index": 0, "delta": d}, "content_block_delta") for d in deltas]
    frames += [
        sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": _STOP_REASONS[answer.finish], "stop_sequence": None},
                "usage": {"output_tokens": answer.completion_tokens},
            },
            "message_delta",
        ),
        sse({"type": "message_stop"}, "message_stop"),
    ]
    return frames


def anthropic_error(status: int) -> Json:
    kinds = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        503: "overloaded_error",
        529: "overloaded_error",
    }
    return {
        "type": "error",
        "error": {"type": kinds.get(status, "api_error"), "message": f"fake upstream says {status}"},
    }
