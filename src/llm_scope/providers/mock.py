"""A built-in model, so the first run needs no keys and no network.

It answers every API family in that family's own format (the row's `mock`): it echoes the last user
message, streams in several chunks with usage, and calls a tool when the request offers tools (then answers
in text once the tool result comes back), which is enough to try an IDE's agent loop end to end.
"""

from __future__ import annotations

from typing import Any

from ..apis import ApiName
from ..types import Deployment
from .base import CallOptions, FamilyProvider, UpstreamResponse


class MockProvider(FamilyProvider):
    async def call(
        self, api: ApiName, deployment: Deployment, body: dict[str, Any], options: CallOptions
    ) -> UpstreamResponse:
        answer = self.families[api].mock(body, deployment)
        if isinstance(answer, bytes):
            return UpstreamResponse(headers={"content-type": "application/json"}, body=answer)
        return UpstreamResponse(headers={"content-type": "text/event-stream"}, chunks=answer)
