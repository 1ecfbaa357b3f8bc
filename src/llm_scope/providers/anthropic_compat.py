"""Native passthrough to Anthropic-format upstreams for `/v1/messages` and `/v1/messages/count_tokens`.

Every field and `anthropic-beta` header goes up as sent; SSE events come back untouched. The one change:
`role: "system"` entries inside `messages` (Claude Code sends them) are moved to the top-level `system`,
which is the only place Anthropic's API accepts them.
"""

from __future__ import annotations

from typing import Any

from ..types import Deployment
from .passthrough import PassthroughProvider

DEFAULT_BASE = "https://api.anthropic.com"
DEFAULT_VERSION = "2023-06-01"


class AnthropicCompatProvider(PassthroughProvider):
    def target(self, deployment: Deployment, path: str) -> tuple[str, dict[str, str]]:
        """A client's own `anthropic-version` (forwarded) replaces the default one."""
        base = (deployment.api_base or DEFAULT_BASE).rstrip("/")
        if base.endswith("/v1"):
            base = base[:-3]
        headers = {"content-type": "application/json", "anthropic-version": DEFAULT_VERSION}
        if deployment.api_key:
            headers["x-api-key"] = deployment.api_key
        return f"{base}/{path}", headers

    def payload(self, body: dict[str, Any]) -> dict[str, Any]:
        return hoist_system_messages(body)


def hoist_system_messages(body: dict[str, Any]) -> dict[str, Any]:
    """Move `role: system` messages into `system`, keeping their order after any existing system prompt."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not any(isinstance(m, dict) and m.get("role") == "system" for m in messages):
        return dict(body)
    blocks: list[dict[str, Any]] = []
    existing = body.get("system")
    if isinstance(existing, str) and existing:
        blocks.append({"type": "text", "text": existing})
    elif isinstance(existing, list):
        blocks.extend(existing)
    kept = []
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "system":
            content = message.get("content")
            if isinstance(content, str):
                blocks.append({"type": "text", "text": content})
            elif isinstance(content, list):
                blocks.extend(c for c in content if isinstance(c, dict))
        else:
            kept.append(message)
    return {**body, "system": blocks, "messages": kept}
