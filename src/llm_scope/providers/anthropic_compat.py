"""Native passthrough to Anthropic-format upstreams for `/v1/messages` and `/v1/messages/count_tokens`.

Every field and `anthropic-beta` header goes up as sent; SSE events come back untouched. The one change:
`role: "system"` entries inside `messages` (Claude Code sends them) are moved to the top-level `system`,
which is the only place Anthropic's API accepts them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import jsoncodec
from ..apis import FAMILIES, ApiFamily, ApiName, by_name
from ..types import Deployment
from .base import CallOptions, UpstreamResponse
from .egress import verify_setting
from .upstream_http import UpstreamHTTP

DEFAULT_BASE = "https://api.anthropic.com"
DEFAULT_VERSION = "2023-06-01"


class AnthropicCompatProvider:
    def __init__(self, http: UpstreamHTTP, families: Iterable[ApiFamily] = FAMILIES) -> None:
        self.http = http
        self.families = by_name(families)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(
        self, api: ApiName, deployment: Deployment, body: dict[str, Any], options: CallOptions
    ) -> UpstreamResponse:
        base = (deployment.api_base or DEFAULT_BASE).rstrip("/")
        if base.endswith("/v1"):
            base = base[:-3]
        headers = {"content-type": "application/json", "anthropic-version": DEFAULT_VERSION, **options.headers}
        if deployment.api_key:
            headers["x-api-key"] = deployment.api_key
        payload = hoist_system_messages(body)
        payload["model"] = deployment.model
        data = jsoncodec.dumps(payload)
        return await self.http.post(
            f"{base}/{self.families[api].upstream_path}",
            headers,
            data,
            stream=bool(body.get("stream")),
            options=options,
            verify=verify_setting(deployment.params.get("ssl_verify")),
        )


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
