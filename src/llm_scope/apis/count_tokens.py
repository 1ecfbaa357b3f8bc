"""Anthropic's token counting (`/v1/messages/count_tokens`): a Messages body in, `{"input_tokens": n}` out.

It shares the Messages validation (less `max_tokens`) and answer reader; nothing is billed, so the trace
keeps the count as its output and no usage.
"""

from __future__ import annotations

import json
from typing import Any

from ..types import Deployment
from .chat import ChatStreamTap
from .family import ApiFamily, MockAnswer, messages_input, openai_stream_error, unchanged
from .messages import FORWARDED, summarize_anthropic_json, validate_messages
from .mocking import tokens


def mock(body: dict[str, Any], deployment: Deployment) -> MockAnswer:
    count = tokens([body.get("system"), body.get("messages"), body.get("tools")])
    return json.dumps({"input_tokens": count}).encode()


COUNT_TOKENS = ApiFamily(
    name="count_tokens",
    route="count_tokens",
    paths=("/v1/messages/count_tokens",),
    validate=lambda body: validate_messages(body, need_max_tokens=False),
    input_of=messages_input,
    prepare=unchanged,
    summarize=summarize_anthropic_json,
    # Never streamed; an upstream that streams anyway is relayed (and its errors written) as chat's would be.
    tap=lambda strip_usage: ChatStreamTap(strip_usage=strip_usage),
    stream_error=openai_stream_error,
    mock=mock,
    upstream_path="v1/messages/count_tokens",
    litellm="token_counter",
    genai_operation="count_tokens",
    anthropic=True,
    forward=FORWARDED,
)
