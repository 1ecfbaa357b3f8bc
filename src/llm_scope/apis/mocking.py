"""What the built-in mock model's answers share, whatever the family: the reply text and token counts.

Realistic enough for real clients (the SDKs, Claude Code, Codex) to parse; each family's module builds its
own wire format from these.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

PREFIX = "This is the llm-scope mock model."


def reply(text: str) -> str:
    return f"{PREFIX} You said: {text}" if text else PREFIX


def tokens(value: Any) -> int:
    return max(1, len(json.dumps(value)) // 4)


def named_event(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def iterate(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def last_user_text(messages: Any) -> str:
    """The text of the last user turn in a list of messages (chat, Messages, a Responses `input` list)."""
    for msg in reversed(messages if isinstance(messages, list) else []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""
