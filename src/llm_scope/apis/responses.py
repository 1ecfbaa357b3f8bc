"""OpenAI Responses (`/v1/responses`): Codex's API; named SSE events, usage in the terminal event.

First-token time is when the first `.delta` event passes; the trace reads the final response object.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ..accounting.usage import responses_usage
from ..errors import GatewayError
from ..types import Deployment
from .family import (
    ApiFamily,
    MockAnswer,
    Summary,
    event_tap,
    invalid_json,
    load_object,
    sse_events,
    validate_input,
    without_metadata,
)
from .mocking import iterate, last_user_text, named_event, reply, tokens


def input_of(body: dict[str, Any]) -> Any:
    extra = {k: body[k] for k in ("instructions", "tools") if body.get(k)}
    return {"input": body.get("input"), **extra} if extra else body.get("input")


def stream_error(exc: GatewayError) -> bytes:
    body = {"type": "error", "code": exc.code, "message": exc.message, "param": exc.param}
    return b"event: error\ndata: " + json.dumps(body).encode() + b"\n\n"


def summarize_stream(raw: bytes) -> Summary:
    """The final response object of the terminal event (completed, incomplete or failed), and any error event."""
    final: dict[str, Any] | None = None
    error: str | None = None
    for event in sse_events(raw):
        kind = event.get("type")
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            final = event.get("response")
        elif kind == "error":
            error = str(event.get("message") or event.get("error"))
    summary = summarize_response_object(final or {})
    summary.error = error or summary.error
    return summary


def summarize_response_object(obj: dict[str, Any]) -> Summary:
    error = obj.get("error")
    return Summary(
        output=obj.get("output"),
        usage=responses_usage(obj.get("usage")),
        finish_reason=obj.get("status"),
        error=str(error.get("message")) if isinstance(error, dict) else None,
    )


def summarize_responses_json(raw: bytes) -> Summary:
    obj = load_object(raw)
    if obj is None:
        return invalid_json()
    return summarize_response_object(obj)


def mock(body: dict[str, Any], deployment: Deployment) -> MockAnswer:
    """A message echoing the input, or a call of the first function tool until its output comes back."""
    model = str(body.get("model") or "mock")
    ident = "resp_mock" + os.urandom(8).hex()
    created = int(time.time())
    given = body.get("input")
    text = reply(given if isinstance(given, str) else last_user_text(given))
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
    usage_in, usage_out = tokens(body.get("input")), tokens(item)
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
        return json.dumps(response).encode()
    seq = iter(range(1000))
    pending = {**response, "status": "in_progress", "output": [], "usage": None}
    chunks = [
        named_event(
            "response.created", {"type": "response.created", "sequence_number": next(seq), "response": pending}
        ),
        named_event(
            "response.in_progress", {"type": "response.in_progress", "sequence_number": next(seq), "response": pending}
        ),
    ]
    if item["type"] == "message":
        empty = {**item, "status": "in_progress", "content": []}
        chunks.append(
            named_event(
                "response.output_item.added",
                {"type": "response.output_item.added", "output_index": 0, "sequence_number": next(seq), "item": empty},
            )
        )
        part = {"type": "output_text", "text": "", "annotations": []}
        chunks.append(
            named_event(
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
                named_event(
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
            named_event(
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
            named_event(
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
            named_event(
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
            named_event(
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
            named_event(
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
        named_event(
            "response.output_item.done",
            {"type": "response.output_item.done", "output_index": 0, "sequence_number": next(seq), "item": item},
        )
    )
    chunks.append(
        named_event(
            "response.completed", {"type": "response.completed", "sequence_number": next(seq), "response": response}
        )
    )
    return iterate(chunks)


RESPONSES = ApiFamily(
    name="responses",
    route="responses",
    paths=("/v1/responses", "/responses"),
    validate=validate_input,
    input_of=input_of,
    prepare=without_metadata,
    summarize=summarize_responses_json,
    tap=event_tap(b".delta", (b"response.completed", b"response.incomplete", b"response.failed"), summarize_stream),
    stream_error=stream_error,
    mock=mock,
    upstream_path="responses",
    litellm="aresponses",
    genai_operation="chat",
)
