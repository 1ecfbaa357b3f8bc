"""Anthropic Messages routes (`/v1/messages`, `/v1/messages/count_tokens`), errors in Anthropic's shape.

Claude Code and the anthropic SDK send `anthropic-version` and `anthropic-beta`; both go upstream as sent.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequest
from .handlers import ApiFamily

FORWARDED = ("anthropic-version", "anthropic-beta")


def _validate(body: Any, *, need_max_tokens: bool) -> dict[str, Any]:
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


MESSAGES = ApiFamily("messages", lambda b: _validate(b, need_max_tokens=True), anthropic=True, forward=FORWARDED)
COUNT_TOKENS = ApiFamily(
    "count_tokens", lambda b: _validate(b, need_max_tokens=False), anthropic=True, forward=FORWARDED
)
APIS = {"/v1/messages": MESSAGES, "/v1/messages/count_tokens": COUNT_TOKENS}
