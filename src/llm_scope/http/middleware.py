"""Every response, errors included, carries `X-Trace-ID` and `X-Duration-Ms`.

Plain ASGI (no BaseHTTPMiddleware): it only wraps `send`, so a stream is never buffered and the cost is
one closure per request. The trace id is minted here and handed to routes through the scope.
"""

from __future__ import annotations

import os
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

TRACE_ID_KEY = "llm_scope.trace_id"
START_KEY = "llm_scope.start"
# Only API routes get an in-flight series: a label per arbitrary path would be unbounded.
TRACKED_PREFIXES = ("/v1/chat/completions", "/chat/completions", "/v1/messages", "/v1/responses", "/v1/embeddings")


class TraceHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trace_id = os.urandom(16).hex()
        start = time.perf_counter()
        scope[TRACE_ID_KEY] = trace_id
        scope[START_KEY] = (time.time(), start)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                took = f"{(time.perf_counter() - start) * 1000:.2f}".encode()
                headers = list(message.get("headers", ()))
                headers.append((b"x-trace-id", trace_id.encode()))
                headers.append((b"x-duration-ms", took))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class InFlightMiddleware:
    """Counts requests being served (streams included, until their last byte) for the in-flight gauge."""

    def __init__(self, app: ASGIApp, gauge: Any) -> None:
        self.app = app
        self.gauge = gauge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(TRACKED_PREFIXES):
            await self.app(scope, receive, send)
            return
        child = self.gauge.labels(path)
        child.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            child.dec()
