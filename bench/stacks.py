"""The passthrough on each server stack that bench/servers.py compares: `python -m bench.stacks --port P --upstream U`.

Every stack runs the same work: read the body, POST it to the mock with llm-scope's own upstream client
(providers/upstream_http.py), answer with the mock's bytes (a stream chunk by chunk). Only the layer
between the socket and that work differs:

- uvicorn + httptools + ASGI: bench/passthrough.py, what llm-scope runs on today;
- granian's ASGI (`asgi_factory`): the same ASGI app, served by a Rust HTTP server;
- granian's RSGI (`rsgi_factory`): granian's own interface, no ASGI message dicts;
- `LeanProtocol` (this module's command): an asyncio.Protocol and httptools' parser, no server framework at
  all: the floor of a "leaner protocol class" for the API routes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from typing import Any

import httptools

from bench.passthrough import OPTIONS, make_app
from llm_scope.errors import GatewayError
from llm_scope.providers.upstream_http import UpstreamHTTP

READY = (b"/ready", b"/health")
JSON = {"Content-Type": "application/json"}


def asgi_factory() -> Any:
    """bench/passthrough.py's ASGI app; granian imports it by name, so the mock's URL comes from the env."""
    return make_app(os.environ["BENCH_UPSTREAM"])


def rsgi_factory() -> Any:
    upstream = os.environ["BENCH_UPSTREAM"]
    http = UpstreamHTTP()

    async def app(scope: Any, proto: Any) -> None:
        if scope.proto != "http":
            return
        if scope.path in ("/ready", "/health"):
            proto.response_bytes(200, [], b"ok")
            return
        body = await proto()
        answer = await http.post(upstream, JSON, body, stream=b'"stream":true' in body, options=OPTIONS)
        headers = [("content-type", answer.headers["content-type"])]
        if answer.chunks is None:
            proto.response_bytes(answer.status, headers, answer.body)
            return
        out = proto.response_stream(answer.status, headers)
        async for chunk in answer.chunks:
            await out.send_bytes(chunk)

    return app


class LeanProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive, one request at a time per connection (reading pauses while one is in flight)."""

    def __init__(self, http: UpstreamHTTP, upstream: str) -> None:
        self.http, self.upstream = http, upstream
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.task is not None:
            self.task.cancel()  # the client went away: stop relaying (closes the upstream connection)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            if self.transport is not None:
                self.transport.close()

    def on_message_begin(self) -> None:
        self.url, self.body = b"", []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        keep = self.parser.should_keep_alive()
        if self.url.split(b"?", 1)[0] in READY:
            self._write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            return
        assert self.transport is not None
        self.transport.pause_reading()
        self.task = asyncio.get_running_loop().create_task(self.relay(b"".join(self.body), keep))

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def relay(self, body: bytes, keep: bool) -> None:
        try:
            answer = await self.http.post(self.upstream, JSON, body, stream=b'"stream":true' in body, options=OPTIONS)
        except GatewayError as exc:
            self._write(b"HTTP/1.1 %d Bad Gateway\r\ncontent-length: 0\r\n\r\n" % exc.status)
        else:
            head = b"HTTP/1.1 %d OK\r\ncontent-type: %s\r\n" % (answer.status, answer.headers["content-type"].encode())
            if answer.chunks is None:
                self._write(head + b"content-length: %d\r\n\r\n%s" % (len(answer.body), answer.body))
            else:
                self._write(head + b"transfer-encoding: chunked\r\n\r\n")
                async for chunk in answer.chunks:
                    self._write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self._write(b"0\r\n\r\n")
        self.task = None
        if self.transport is None:
            return
        if keep:
            self.transport.resume_reading()
        else:
            self.transport.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True, help="the mock's chat completions URL")
    args = p.parse_args()
    import uvloop

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        http = UpstreamHTTP()
        server = await loop.create_server(lambda: LeanProtocol(http, args.upstream), "127.0.0.1", args.port)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        server.close()
        await http.aclose()

    uvloop.run(serve())


if __name__ == "__main__":
    main()
