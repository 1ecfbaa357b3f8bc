"""OpenAI embeddings (`/v1/embeddings`): an `input` in, vectors out; never streamed."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from typing import Any

from ..accounting.usage import openai_usage
from ..types import Deployment
from .chat import ChatStreamTap
from .family import (
    ApiFamily,
    MockAnswer,
    Summary,
    invalid_json,
    load_object,
    openai_stream_error,
    validate_input,
    without_metadata,
)
from .mocking import tokens


def input_of(body: dict[str, Any]) -> Any:
    return body.get("input")


def summarize_embeddings_json(raw: bytes) -> Summary:
    """Vectors are not worth storing; the trace keeps how many and how long."""
    obj = load_object(raw)
    if obj is None:
        return invalid_json()
    data = obj.get("data") or []
    first = data[0].get("embedding") if data and isinstance(data[0], dict) else None
    dims = len(first) if isinstance(first, list) else None
    return Summary(
        output={"embeddings": len(data), "dimensions": dims}, usage=openai_usage(obj.get("usage")), finish_reason=None
    )


def _vector(text: str, dims: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest() * (dims // 32 + 1)
    return [round((b - 128) / 128, 4) for b in digest[:dims]]


def mock(body: dict[str, Any], deployment: Deployment) -> MockAnswer:
    """Vectors derived from a hash of each input: the same input, the same vector."""
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
    count = tokens(inputs)
    out = {
        "object": "list",
        "data": data,
        "model": str(body.get("model") or "mock"),
        "usage": {"prompt_tokens": count, "total_tokens": count},
    }
    return json.dumps(out).encode()


EMBEDDINGS = ApiFamily(
    name="embeddings",
    route="embeddings",
    paths=("/v1/embeddings", "/embeddings"),
    validate=validate_input,
    input_of=input_of,
    prepare=without_metadata,
    summarize=summarize_embeddings_json,
    # Never streamed; an upstream that streams anyway is relayed as chat's would be.
    tap=lambda strip_usage: ChatStreamTap(strip_usage=strip_usage),
    stream_error=openai_stream_error,
    mock=mock,
    upstream_path="embeddings",
    litellm="aembedding",
    genai_operation="embeddings",
)
