"""Every response, errors included, carries `X-Trace-ID` and `X-Duration-Ms`.

Plain ASGI (no BaseHTTPMiddleware): it only wraps `send`, so a stream is never buffered and the cost is
one closure per request. The trace id is minted here and handed to routes through the scope.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import GatewayError
from .responses import error_response

TRACE_ID_KEY = "llm_scope.trace_id"
START_KEY = "llm_scope.start"
# The API routes, matched exactly: only they get an in-flight series (labelled like the other metrics'
# `route`, since a label per arbitrary path would be unbounded) and only they pass admission control.
TRACKED_ROUTES = {
    "/v1/chat/completions": "chat_completion",
    "/chat/completions": "chat_completion",
    "/v1/messages": "messages",
    "/v1/messages/count_tokens": "count_tokens",
    "/v1/responses": "responses",
    "/responses": "responses",
    "/v1/embeddings": "embeddings",
    "/embeddings": "embeddings",
}


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
        route = TRACKED_ROUTES.get(scope.get("path", "")) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        child = self.gauge.labels(route)
        child.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            child.dec()


class AdmissionMiddleware:
    """Overload protection: at most `limit` API calls at once, `queue` more waiting; beyond that, 503.

    Memory stays bounded however hard clients push, and a client told to back off (Retry-After) can go
    to another replica instead of waiting on this one.
    """

    def __init__(self, app: ASGIApp, limit: int, queue: int, rejected: Any = None) -> None:
        self.app = app
        self.rejected = rejected  # counter with a `route` label
        self.limit = limit
        self.queue = queue
        self.active = 0
        self.waiting = 0
        self._released = asyncio.Condition()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = TRACKED_ROUTES.get(scope.get("path", "")) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            if self.waiting >= self.queue:
                if self.rejected is not None:
                    self.rejected.labels(route).inc()
                error = GatewayError(
                    f"The gateway is at capacity ({self.limit} calls in progress, {self.queue} queued); retry shortly",
                    status=503,
                    type="overloaded_error",
                    code="overloaded",
                    retry_after=1,
                )
                await error_response(error, anthropic=scope["path"].startswith("/v1/messages"))(scope, receive, send)
                return
            self.waiting += 1
            try:
                async with self._released:
                    await self._released.wait_for(lambda: self.active < self.limit)
            finally:
                self.waiting -= 1
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1
            async with self._released:
                self._released.notify(1)
