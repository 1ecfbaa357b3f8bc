"""Payloads for the OpenAI endpoints beyond chat: embeddings, model listing and the Responses API.

Split from ``wire.py`` only to keep modules short; the same determinism rules apply (see there).
Embedding vectors are derived from a hash of the input text, so equal inputs always embed equally.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from typing import Any

from .wire import (
    FAKE_CACHED_TOKENS,
    FAKE_CREATED,
    FAKE_PROMPT_TOKENS,
    FAKE_REASONING_TOKENS,
    Answer,
    Json,
    decide_answer,
    last_user_text,
    split_chunks,
    sse,
)

FAKE_EMBEDDING_DIM = 8
DEFAULT_MODELS = ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5", "text-embedding-3-small"]


# ---------------------------------------------------------------------------------- embeddings and models


def fake_embedding(text: str, dim: int = FAKE_EMBEDDING_DIM) -> list[float]:
    """Multiples of 1/128, so the float and base64 (float32) encodings agree exactly."""
    return [(b - 128) / 128 for b in hashlib.shake_256(text.encode()).digest(dim)]


def embedding_inputs(raw: Any) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
        return [json.dumps(raw)]
    if isinstance(raw, list):
        return [x if isinstance(x, str) else json.dumps(x) for x in raw]
    return [""]


def embeddings_response(body: Json, model: str) -> Json:
    requested = body.get("dimensions")
    dim = requested if isinstance(requested, int) and requested > 0 else FAKE_EMBEDDING_DIM
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for i, text in enumerate(embedding_inputs(body.get("input"))):
        vec = fake_embedding(text, dim)
        value: Any = base64.b64encode(struct.pack(f"<{dim}f", *vec)).decode() if as_base64 else vec
        data.append({"object": "embedding", "index": i, "embedding": value})
    usage = {"prompt_tokens": FAKE_PROMPT_TOKENS, "total_tokens": FAKE_PROMPT_TOKENS}
    return {"object": "list", "data": data, "model": model, "usage": usage}


def models_list(models: list[str]) -> Json:
    data = [{"id": m, "object": "model", "created": FAKE_CREATED, "owned_by": "fake-upstream"} for m in models]
    return {"object": "list", "data": data}


# ---------------------------------------------------------------------------------------- Responses API


def responses_input_text(body: Json) -> str:
    items = body.get("input")
    if isinstance(items, str):
        return items
    return last_user_text(items, ("input_text", "text"))


def responses_answer(body: Json) -> Answer:
    return decide_answer(responses_input_text(body), None, body.get("max_output_tokens"))


def responses_object(rid: str, model: str, answer: Answer, body: Json, done: bool = True) -> Json:
    item = {
        "id": f"msg_{rid}",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": answer.text, "annotations": [], "logprobs": []}],
    }
    incomplete = answer.finish == "length"
    return {
        "id": rid,
        "object": "response",
        "created_at": FAKE_CREATED,
        "status": ("incomplete" if incomplete else "completed") if done else "in_progress",
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete and done else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": [item] if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": responses_usage(answer.completion_tokens) if done else None,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def responses_usage(output_tokens: int) -> Json:
    return {
        "input_tokens": FAKE_PROMPT_TOKENS,
        "input_tokens_details": {"cached_tokens": FAKE_CACHED_TOKENS},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": FAKE_REASONING_TOKENS},
        "total_tokens": FAKE_PROMPT_TOKENS + output_tokens,
    }


def responses_stream(rid: str, model: str, answer: Answer, body: Json, n_chunks: int) -> list[str]:
    final = responses_object(rid, model, answer, body)
    item = final["output"][0]
    part = item["content"][0]
    where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    events: list[Json] = [
        {"type": "response.created", "response": responses_object(rid, model, answer, body, done=False)},
        {"type": "response.in_progress", "response": responses_object(rid, model, answer, body, done=False)},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**item, "status": "in_progress", "content": []},
        },
        {"type": "response.content_part.added", **where, "part": {**part, "text": ""}},
    ]
    for piece in split_chunks(answer.text or "", n_chunks):
        events.append({"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []})
    events += [
        {"type": "response.output_text.done", **where, "text": answer.text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": part},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {
            "type": "response.completed" if final["status"] == "completed" else "response.incomplete",
            "response": final,
        },
    ]
    return [sse({**e, "sequence_number": i}, e["type"]) for i, e in enumerate(events)]
