"""Response types the gateway needs beyond Starlette's: raw bytes, OpenAI errors, and a stream that
stops the upstream the moment the client goes away."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..errors import GatewayError
from ..internals import uvicorn_request_cycle


class RawResponse(Response):
    """Bytes as the upstream sent them; `after` runs once the client has them (trace recording)."""

    def __init__(
        self, status: int, body: bytes, headers: Mapping[str, str], after: Callable[[], None] | None = None
    ) -> None:
        self.status_code = status
        self.body = body
        self.raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self.raw_headers.append((b"content-length", str(len(body)).encode()))
        self.after = after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": self.body})
        finally:
            if self.after is not None:  # recorded even if the client left before the answer went out
                self.after()


class HeadWithBody:
    """Stands in for the server's transport while a whole response goes out: the head (the server's first
    write) is held back and leaves with the body in one writev.

    uvicorn writes the head on `http.response.start` and the body on `http.response.body`: two system calls
    and two TCP segments, the second one waking the client again, on a call whose whole budget is a few
    hundred microseconds. Holding the head costs nothing when the body follows at once, as it does here.
    Everything but `write` and `close` is the real transport's.
    """

    __slots__ = ("_first", "_head", "_transport")

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._head = b""
        self._first = True

    def write(self, data: bytes) -> None:
        if self._first:
            self._first = False
            self._head = bytes(data)
            return
        head, self._head = self._head, b""
        if head:
            self._transport.writelines((head, data))
        else:
            self._transport.write(data)

    def flush(self) -> None:
        head, self._head = self._head, b""
        if head and not self._transport.is_closing():
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


async def send_whole(response: RawResponse, scope: Scope, receive: Receive, send: Send, server_send: Send) -> None:
    """Send `response` through `send` (which ends in the server's `server_send`), head and body in one write.

    Where the server is uvicorn, `server_send` is its request cycle's bound `send`, whose `transport` is
    swapped for the duration; anywhere else (another server, a middleware in between) it is sent as usual.
    """
    cycle = uvicorn_request_cycle(server_send)  # fenced: uvicorn's private request cycle
    if cycle is None:
        await response(scope, receive, send)
        return
    transport = cycle.transport
    held = HeadWithBody(transport)
    cycle.transport = held
    try:
        await response(scope, receive, send)
    finally:
        cycle.transport = transport
        held.flush()  # a HEAD request has no body write; a failed send may have left the head alone


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> RawResponse:
    body = json.dumps(data, separators=(",", ":")).encode()
    return RawResponse(status, body, {"content-type": "application/json", **(headers or {})})


def error_response(exc: GatewayError, *, anthropic: bool = False) -> RawResponse:
    headers = {}
    if exc.retry_after is not None:
        headers["retry-after"] = f"{exc.retry_after:g}"
    return json_response(exc.anthropic_body() if anthropic else exc.openai_body(), exc.status, headers)


class StreamResponse(Response):
    """Relay an async iterator of SSE bytes, flushing each chunk.

    A watcher listens for `http.disconnect` and cancels the relay, so a client that leaves mid-stream
    closes the upstream request at once instead of when the next chunk fails to send.
    """

    def __init__(
        self, status: int, chunks: AsyncIterator[bytes], headers: Mapping[str, str], streams: Any = None
    ) -> None:
        self.status_code = status
        self.chunks = chunks
        self.streams = streams  # the in-flight streams gauge
        merged = {
            "content-type": "text/event-stream",
            "cache-control": "no-cache",
            "x-accel-buffering": "no",
            **{k: v for k, v in headers.items() if k not in ("content-length", "content-encoding")},
        }
        self.raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in merged.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        relay = asyncio.current_task()
        assert relay is not None
        gone = asyncio.Event()

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    gone.set()
                    relay.cancel()
                    return

        watcher = asyncio.create_task(watch())
        streams = self.streams
        if streams is not None:
            streams.inc()
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except asyncio.CancelledError:
            if not gone.is_set():
                raise
            relay.uncancel()
        except OSError:
            pass  # the client went away while we were writing
        finally:
            if streams is not None:
                streams.dec()
            watcher.cancel()
            with contextlib.suppress(BaseException):
                await self.chunks.aclose()  # type: ignore[attr-defined]
