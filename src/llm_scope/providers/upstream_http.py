"""The one pooled HTTP/1.1 client for native passthrough upstreams: httptools over asyncio protocols.

Why not aiohttp here (it still sends traces to Langfuse): every upstream call has one narrow shape (POST a
JSON body, then read the whole answer or relay its stream), and aiohttp's general client spent ~60 µs of
CPU on it (request/response objects, multidicts, payload registry, timer rescheduling per read), a fifth
of the gateway's whole per-call budget. httptools is the C parser uvicorn already runs for our own
server side. Every transport failure becomes a `GatewayError` here, the one boundary that sees sockets.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections.abc import AsyncIterator

import httptools

from ..errors import GatewayError, UpstreamError, UpstreamTimeout, upstream_status_error
from .base import CallOptions, UpstreamResponse, pick_response_headers
from .egress import Egress, Target, describe_tls_error, open_tunnel

KEEPALIVE_SECONDS = 60.0  # an idle pooled connection older than this is closed instead of reused
PAUSE_BYTES = 1 << 20  # a slow client: stop reading the upstream once this much is buffered


class ConnectionBroken(Exception):
    """The connection failed; `sent_nothing_back`: not one byte of an answer arrived on it."""

    def __init__(self, reason: str, *, sent_nothing_back: bool) -> None:
        super().__init__(reason)
        self.sent_nothing_back = sent_nothing_back


class Connection(asyncio.Protocol):
    """One keep-alive connection, answering one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.reused = False
        self.lease = 0  # bumped at every checkout, so a late close() can tell its request from the next one
        self.in_use = False
        self.pool_key: tuple[str, int, bool, bool | str] = ("", 0, False, True)
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.body: list[bytes] = []
        self.buffered = 0
        self.error: str | None = None
        self.got_bytes = False
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._interim = False

    # --- asyncio.Protocol ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(f"malformed HTTP response ({exc})")
            self.close()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete:
            if self.headers_done and "content-length" not in self.headers and not self._chunked():
                self.complete = True  # a body delimited by the end of the connection
            else:
                self._fail(f"connection closed ({type(exc).__name__})" if exc else "connection closed")
        self._wake()

    # --- httptools callbacks ---------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # "100 Continue" and friends: the real answer follows on the same connection
            self.headers = {}
            self._interim = True
            return
        self.status = status
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > PAUSE_BYTES and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self.keep_alive = self.parser.should_keep_alive()  # only meaningful inside this callback
        self.complete = True
        self._wake()

    # --- used by UpstreamHTTP --------------------------------------------------------------------------

    def send(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        self._reset()
        # One write, one segment: handing uvloop head and body apart costs a second syscall and packet
        # (measured: 3-4x the kernel time per call). Copying even a 100 KB prompt is cheaper than that.
        self.transport.write(head + body)

    async def wait(self, silence: float) -> None:
        """Until the next event (headers, body bytes, end, failure), at most `silence` seconds without one.

        One timer handle per wait rather than `asyncio.timeout`: this runs for every read of every call."""
        if self.error is not None:
            raise ConnectionBroken(self.error, sent_nothing_back=not self.got_bytes)
        waiter = self._waiter = self.loop.create_future()
        timer = self.loop.call_later(silence, self._time_out, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        if self.error is not None:
            raise ConnectionBroken(self.error, sent_nothing_back=not self.got_bytes)

    def take_body(self) -> bytes:
        chunks, self.body, self.buffered = self.body, [], 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    def _fail(self, reason: str) -> None:
        if self.error is None:
            self.error = reason
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @staticmethod
    def _time_out(waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(TimeoutError())


class UpstreamHTTP:
    """Asks for identity encoding: the tap reads the bytes it relays, and loopback-to-LAN links gain nothing."""

    def __init__(self, tls: ssl.SSLContext | None = None, egress: Egress | None = None) -> None:
        self._idle: dict[tuple[str, int, bool, bool | str], list[Connection]] = {}
        self._targets: dict[str, Target] = {}
        self._open: set[Connection] = set()
        self._tls = tls  # what `ssl_verify: true` trusts; default: SSL_CERT_FILE or the system's store
        self._egress = egress or Egress()

    async def aclose(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()

    def _target(self, url: str) -> Target:
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) > 1000:
                self._targets.clear()
            target = self._targets[url] = Target(url, self._egress)
        return target

    async def _connect(self, target: Target, options: CallOptions, verify: bool | str) -> Connection:
        key = (target.host, target.port, target.tls, verify)
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < KEEPALIVE_SECONDS:
                conn.reused = True
                conn.lease += 1
                conn.in_use = True
                return conn
            conn.close()
            self._open.discard(conn)
        tls = None
        if target.tls:
            tls = self._tls if verify is True and self._tls is not None else self._egress.tls_context(verify)
        # Only here, off the pooled path: on Python 3.11 every get_running_loop() is a getpid() system call.
        loop = asyncio.get_running_loop()
        proxy = target.proxy
        via = f" through proxy {proxy.shown}" if proxy is not None else ""
        try:
            async with asyncio.timeout(options.connect_timeout):
                if proxy is not None and tls is not None:
                    _, conn = await open_tunnel(loop, proxy, target.host, target.port, tls, lambda: Connection(loop))
                else:
                    _, conn = await loop.create_connection(
                        lambda: Connection(loop),
                        proxy.host if proxy is not None else target.host,
                        proxy.port if proxy is not None else target.port,
                        ssl=tls,
                        server_hostname=target.host if tls is not None else None,
                    )
        except TimeoutError:
            raise UpstreamTimeout(
                f"cannot reach upstream {target.netloc}{via}: no connection within {options.connect_timeout:g}s"
            ) from None
        except ssl.SSLError as exc:
            raise UpstreamError(f"cannot reach upstream {target.netloc}{via}: {describe_tls_error(exc)}") from None
        except OSError as exc:
            raise UpstreamError(f"cannot reach upstream {target.netloc}{via}: {type(exc).__name__}") from None
        conn.pool_key = key
        self._open.add(conn)
        conn.in_use = True
        return conn

    def _release(self, target: Target, conn: Connection) -> None:
        conn.in_use = False
        if conn.reusable:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(conn.pool_key, []).append(conn)
        else:
            conn.close()
            self._open.discard(conn)

    async def post(
        self,
        url: str,
        headers: dict[str, str],
        data: bytes,
        *,
        stream: bool,
        options: CallOptions,
        verify: bool | str = True,
    ) -> UpstreamResponse:
        """`verify`: the deployment's `ssl_verify` (False, a CA bundle path, or True for the default trust)."""
        target = self._target(url)
        lines = [f"POST {target.path} HTTP/1.1\r\nHost: {target.netloc}\r\nContent-Length: {len(data)}\r\n"]
        if target.proxy is not None and not target.tls and target.proxy.authorization:
            lines.append(f"Proxy-Authorization: {target.proxy.authorization}\r\n")
        for name, value in headers.items():
            if "\n" in value or "\r" in value:  # a key pasted with its newline must not split the request
                raise GatewayError(f"header {name!r} for upstream {target.netloc} contains a line break", status=500)
            lines.append(f"{name}: {value}\r\n")
        lines.append("Accept-Encoding: identity\r\n\r\n")
        head = "".join(lines).encode("latin-1")
        while True:
            conn = await self._connect(target, options, verify)
            try:
                conn.send(head, data)
                while not conn.headers_done:
                    await conn.wait(options.timeout)
                break
            except ConnectionBroken as exc:
                self._discard(conn)
                # A pooled connection the upstream had already closed: it never saw the request, try anew.
                if conn.reused and exc.sent_nothing_back:
                    continue
                raise UpstreamError(f"upstream {target.netloc} failed: {exc}") from None
            except TimeoutError:
                self._discard(conn)
                raise UpstreamTimeout(f"upstream {target.netloc} did not answer within {options.timeout:g}s") from None
            except BaseException:
                self._discard(conn)
                raise
        out_headers = pick_response_headers(conn.headers)
        content_type = conn.headers.get("content-type", "application/json")
        out_headers["content-type"] = content_type
        try:
            decoder = _decoder(conn.headers.get("content-encoding"))
        except UpstreamError:
            self._discard(conn)
            raise
        if conn.status >= 400 or not stream or not content_type.startswith("text/event-stream"):
            try:
                body = await self._read_all(conn, options, decoder)
            except ConnectionBroken as exc:
                raise UpstreamError(f"upstream {target.netloc} failed mid-response: {exc}") from None
            except TimeoutError:
                raise UpstreamTimeout(f"upstream {target.netloc} did not answer within {options.timeout:g}s") from None
            finally:
                self._release(target, conn)
            if conn.status >= 400:
                raise upstream_status_error(conn.status, body, target.netloc, out_headers.get("retry-after"))
            return UpstreamResponse(status=conn.status, headers=out_headers, body=body)

        lease = conn.lease

        async def close() -> None:
            # Still ours and unfinished (the client left, or the stream was never read): it cannot be reused.
            # Once released, the connection may already serve another call, which must be left alone.
            if conn.in_use and conn.lease == lease:
                self._discard(conn)

        return UpstreamResponse(
            status=conn.status,
            headers=out_headers,
            chunks=self._relay(target, conn, options, decoder),
            close=close,
        )

    def _discard(self, conn: Connection) -> None:
        conn.in_use = False
        conn.close()
        self._open.discard(conn)

    @staticmethod
    async def _read_all(conn: Connection, options: CallOptions, decoder: zlib._Decompress | None) -> bytes:
        while not conn.complete:
            await conn.wait(options.timeout)
        body = conn.take_body()
        return decoder.decompress(body) + decoder.flush() if decoder is not None else body

    async def _relay(
        self, target: Target, conn: Connection, options: CallOptions, decoder: zlib._Decompress | None
    ) -> AsyncIterator[bytes]:
        try:
            while True:
                if conn.buffered:
                    chunk = conn.take_body()
                    yield decoder.decompress(chunk) if decoder is not None else chunk
                elif conn.complete:
                    if decoder is not None and (tail := decoder.flush()):
                        yield tail
                    return
                else:
                    await conn.wait(options.timeout)
        except TimeoutError:
            raise UpstreamTimeout(f"upstream {target.netloc} stalled for {options.timeout:g}s mid-stream") from None
        except ConnectionBroken as exc:
            raise UpstreamError(f"upstream {target.netloc} broke off the stream: {exc}") from None
        finally:
            self._release(target, conn)


def _decoder(encoding: str | None) -> zlib._Decompress | None:
    """We ask for identity, but an upstream may compress anyway; clients must still get plain bytes."""
    if not encoding or encoding == "identity":
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise UpstreamError(f"upstream answered with unsupported Content-Encoding {encoding!r}")
