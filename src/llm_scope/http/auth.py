"""The master key gate: when a key is set, every API route needs it; `/health` stays open.

Keys are compared in constant time and never echoed back or logged.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import AuthenticationFailed
from .responses import error_response

OPEN_PATHS = frozenset({"/health", "/ready"})


def presented_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].strip().decode("latin-1")
        if name == b"x-api-key":
            return value.strip().decode("latin-1")
    return None


class MasterKeyMiddleware:
    def __init__(self, app: ASGIApp, master_key: str) -> None:
        self.app = app
        self.master_key = master_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        key = presented_key(scope["headers"])
        if key is None or not hmac.compare_digest(key.encode(), self.master_key):
            anthropic = scope["path"].startswith("/v1/messages")
            message = "Missing API key" if key is None else "Invalid API key"
            await error_response(AuthenticationFailed(message), anthropic=anthropic)(scope, receive, send)
            return
        await self.app(scope, receive, send)
