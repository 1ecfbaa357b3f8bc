"""A tiny HTTP/1.1 server on raw asyncio + httptools, for the benchmark's mock upstream and OTLP sink.

Both must cost as little CPU as possible: on a 2-core machine they share the cores with the proxy under
test and the load generator, so every microsecond they spend is taken from the thing being measured.
A handler gets the parsed request and writes its answer through `Exchange`; keep-alive is the default.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httptools

_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed", 500: b"Error"}


@dataclass
class Request:
    method: bytes
    path: bytes
    headers: dict[bytes, bytes]
    body: bytes


class Exchange:
    """The answer side of one request: a whole body, or a chunked stream written piece by piece."""

    __slots__ = ("_keep_alive", "_proto")

    def __init__(self, proto: _Protocol, keep_alive: bool) -> None:
        self._proto = proto
        self._keep_alive = keep_alive

    def _head(self, status: int, content_type: bytes, extra: bytes) -> bytes:
        conn = b"" if self._keep_alive else b"connection: close\r\n"
        return b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\n%s%s\r\n" % (
            status,
            _REASONS.get(status, b"OK"),
            content_type,
            conn,
            extra,
        )

    def send(self, status: int, body: bytes, content_type: bytes = b"application/json") -> None:
        head = self._head(status, content_type, b"content-length: %d\r\n" % len(body))
        self._proto.write(head + body)
        self._done()

    def start_stream(self, content_type: bytes = b"text/event-stream") -> None:
        self._proto.write(self._head(200, content_type, b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n"))

    def chunk(self, data: bytes) -> None:
        self._proto.write(b"%x\r\n%s\r\n" % (len(data), data))

    def chunks(self, items: list[bytes]) -> None:
        self._proto.write(b"".join(b"%x\r\n%s\r\n" % (len(d), d) for d in items))

    def end_stream(self) -> None:
        self._proto.write(b"0\r\n\r\n")
        self._done()

    def _done(self) -> None:
        self._proto.finished(self._keep_alive)


Handler = Callable[[Request, Exchange], Awaitable[None] | None]


class _Protocol(asyncio.Protocol):
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._body: list[bytes] = []
        self._busy = 0
        self._tasks: set[asyncio.Future[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            if self.transport is not None:
                self.transport.close()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def finished(self, keep_alive: bool) -> None:
        self._busy -= 1
        if self.transport is None:
            return
        if not keep_alive:
            self.transport.close()
        elif self._busy == 0:
            self.transport.resume_reading()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url, self._headers, self._body = b"", {}, []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        path = self._url.split(b"?", 1)[0]
        request = Request(self.parser.get_method(), path, self._headers, b"".join(self._body))
        exchange = Exchange(self, self.parser.should_keep_alive())
        self._busy += 1
        result = self.handler(request, exchange)
        if result is not None:  # an async handler (a stream with delays): answer in order, one at a time
            if self.transport is not None:
                self.transport.pause_reading()
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


def install_uvloop() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    uvloop.install()  # type: ignore[no-untyped-call]
    return "uvloop"


def serve(handler: Handler, host: str, port: int, name: str, reuse_port: bool = False) -> None:
    """Run until SIGTERM/SIGINT; prints one line once listening so a parent can wait for it.

    `reuse_port`: several processes listen on the one port and the kernel spreads connections over them
    (bench.scale runs the mock upstream so, when one core could not keep up with eight workers)."""
    loop_name = install_uvloop()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _Protocol(handler), host, port, backlog=1024, reuse_address=True, reuse_port=reuse_port or None
        )
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        bound = server.sockets[0].getsockname()[1]
        print(f"{name} listening on http://{host}:{bound} ({loop_name})", flush=True)
        await stop.wait()
        server.close()

    asyncio.run(main())
    sys.exit(0)
