"""The passthrough HTTP client against real loopback servers that misbehave in the ways upstreams do."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from llm_scope.errors import GatewayError, UpstreamError, UpstreamTimeout
from llm_scope.providers.base import CallOptions
from llm_scope.providers.upstream_http import UpstreamHTTP

OPTIONS = CallOptions(timeout=2.0, connect_timeout=2.0)
JSON = {"Content-Type": "application/json"}
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    return head, await reader.readexactly(length)


def response(body: bytes, *, status: int = 200, extra: str = "", ctype: str = "application/json") -> bytes:
    head = f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


class Server:
    """A loopback HTTP/1.1 server running `script(reader, writer, connection_number)` per connection."""

    def __init__(self, script: Script, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.tls = tls
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{port}/v1/chat/completions"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.script(reader, writer, self.connections)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def keep_alive(reply: bytes) -> Script:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while True:
            request = await read_request(reader)
            writer.write(reply)
            await writer.drain()
            del request

    return script


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_keep_alive_connection_is_reused_and_request_is_exact() -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while True:
            seen.append(await read_request(reader))
            writer.write(response(b'{"ok":true}', extra="X-Request-Id: req-1\r\nX-Internal: no\r\n"))
            await writer.drain()

    async def main() -> None:
        async with Server(script) as server:
            http = UpstreamHTTP()
            for _ in range(3):
                answer = await http.post(
                    server.url, {**JSON, "Authorization": "Bearer k"}, b'{"a":1}', stream=False, options=OPTIONS
                )
                assert (answer.status, answer.body) == (200, b'{"ok":true}')
                assert answer.headers == {"x-request-id": "req-1", "content-type": "application/json"}
            assert server.connections == 1
            await http.aclose()

    run(main())
    head, body = seen[0]
    assert body == b'{"a":1}'
    assert head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer k\r\n" in head and b"\r\nAccept-Encoding: identity\r\n" in head
    assert b"\r\nContent-Length: 7\r\n" in head and b"\r\nHost: 127.0.0.1:" in head


def test_a_pooled_connection_the_upstream_closed_is_replaced_without_an_error() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        writer.write(response(f'{{"conn":{n}}}'.encode()))  # keep-alive promised, then closed anyway
        await writer.drain()

    async def main() -> None:
        async with Server(script) as server:
            http = UpstreamHTTP()
            first = await http.post(server.url, JSON, b"{}", stream=False, options=OPTIONS)
            second = await http.post(server.url, JSON, b"{}", stream=False, options=OPTIONS)
            assert (first.body, second.body) == (b'{"conn":1}', b'{"conn":2}')
            await http.aclose()

    run(main())


def test_a_reused_connection_that_dies_before_answering_is_retried_once_on_a_new_one() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        if n == 1:
            writer.write(response(b'{"conn":1}'))
            await writer.drain()
            await read_request(reader)  # the close races the next request, as idle timeouts do
            return
        writer.write(response(f'{{"conn":{n}}}'.encode()))
        await writer.drain()

    async def main() -> None:
        async with Server(script) as server:
            http = UpstreamHTTP()
            assert (await http.post(server.url, JSON, b"{}", stream=False, options=OPTIONS)).body == b'{"conn":1}'
            assert (await http.post(server.url, JSON, b"{}", stream=False, options=OPTIONS)).body == b'{"conn":2}'
            assert server.connections == 2
            await http.aclose()

    run(main())


def test_connection_close_chunked_and_eof_delimited_bodies() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        if n == 1:  # chunked, then the connection stays open
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # interim answers are skipped
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            await writer.drain()
            await read_request(reader)
        # no length at all: the body ends with the connection
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-the-end")
        await writer.drain()

    async def main() -> None:
        async with Server(script) as server:
            http = UpstreamHTTP()
            chunked = await http.post(server.url, JSON, b"{}", stream=False, options=OPTIONS)
            assert chunked.body == b"abcde"
            eof = await http.post(server.url, JSON, b"{}", stream=False, options=OPTIONS)
            assert eof.body == b"until-the-end"
            third = await http.post(server.url, JSON, b"{}", stream=False, options=OPTIONS)
            assert third.body == b"until-the-end" and server.connections == 2
            await http.aclose()

    run(main())


def test_sse_stream_is_relayed_as_it_arrives_and_gzip_is_decoded() -> None:
    gate = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        _, body = await read_request(reader)
        if body == b"gzip":
            writer.write(response(gzip.compress(b'{"zipped":true}'), extra="Content-Encoding: gzip\r\n"))
            await writer.drain()
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (b"data: 1\n\n", b"data: 2\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
            await gate.wait()
            gate.clear()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def main() -> None:
        async with Server(script) as server:
            http = UpstreamHTTP()
            answer = await http.post(server.url, JSON, b"stream", stream=True, options=OPTIONS)
            assert answer.chunks is not None and answer.headers["content-type"] == "text/event-stream"
            got = []
            async for chunk in answer.chunks:
                got.append(chunk)  # each arrives before the server sends the next
                gate.set()
            assert got == [b"data: 1\n\n", b"data: 2\n\n"]
            zipped = await http.post(server.url, JSON, b"gzip", stream=False, options=OPTIONS)
            assert zipped.body == b'{"zipped":true}'
            await http.aclose()

    run(main())


def test_closing_a_finished_stream_late_leaves_the_connection_s_next_call_alone() -> None:
    gate = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        writer.write(response(b"data: 0\n\n", ctype="text/event-stream"))
        await read_request(reader)  # the next call, on the same connection: still streaming when ...
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        await writer.drain()
        await gate.wait()
        writer.write(b"9\r\ndata: 1\n\n\r\n0\r\n\r\n")
        await read_request(reader)
        writer.write(response(b"data: 2\n\n", ctype="text/event-stream"))
        await writer.drain()

    async def main() -> None:
        async with Server(script) as server:
            http = UpstreamHTTP()
            first = await http.post(server.url, JSON, b"{}", stream=True, options=OPTIONS)
            assert first.chunks is not None
            assert [c async for c in first.chunks] == [b"data: 0\n\n"]
            second = await http.post(server.url, JSON, b"{}", stream=True, options=OPTIONS)
            await first.aclose()  # ... the gateway closes the first answer, after its client had it all
            gate.set()
            assert second.chunks is not None
            assert [c async for c in second.chunks] == [b"data: 1\n\n"]
            never_read = await http.post(server.url, JSON, b"{}", stream=True, options=OPTIONS)
            await never_read.aclose()  # a client gone before the stream began: that connection is closed
            assert server.connections == 1 and not http._open
            await http.aclose()

    run(main())


def test_a_slow_reader_gets_every_byte_of_a_large_stream() -> None:
    payload = bytes(range(256)) * 40_000  # ~10 MB: well past the point where reading pauses

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        writer.write(response(payload, ctype="text/event-stream"))
        await writer.drain()

    async def main() -> None:
        async with Server(script) as server:
            http = UpstreamHTTP()
            answer = await http.post(server.url, JSON, b"{}", stream=True, options=OPTIONS)
            assert answer.chunks is not None
            got = bytearray()
            async for chunk in answer.chunks:
                got += chunk
                await asyncio.sleep(0.001)
            assert bytes(got) == payload
            await http.aclose()

    run(main())


@pytest.mark.parametrize(
    ("behaviour", "error", "message"),
    [
        ("silent", UpstreamTimeout, "did not answer within"),
        ("garbage", UpstreamError, "malformed HTTP response"),
        ("hang_up", UpstreamError, "connection closed"),
        ("short_body", UpstreamError, "failed mid-response"),
        ("error_500", UpstreamError, "failed with HTTP 500: boom"),
        ("error_429", GatewayError, "slow down"),
    ],
)
def test_failures_become_gateway_errors(behaviour: str, error: type[GatewayError], message: str) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        if behaviour == "silent":
            await asyncio.sleep(5)
        elif behaviour == "garbage":
            writer.write(b"SPDY/9 what\r\n\r\n")
        elif behaviour == "short_body":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-this")
        elif behaviour == "error_500":
            writer.write(response(b'{"error":{"message":"boom"}}', status=500))
        elif behaviour == "error_429":
            writer.write(response(b'{"error":{"message":"slow down"}}', status=429, extra="Retry-After: 7\r\n"))
        await writer.drain()

    async def main() -> None:
        async with Server(script) as server:
            http = UpstreamHTTP()
            with pytest.raises(error, match=message) as caught:
                await http.post(
                    server.url, JSON, b"{}", stream=False, options=CallOptions(timeout=0.3, connect_timeout=1)
                )
            if behaviour == "error_429":
                assert caught.value.status == 429 and caught.value.retry_after == 7
            await http.aclose()

    run(main())


def test_stream_broken_off_midway_raises_on_iteration() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"9\r\ndata: 1\n\n\r\n")
        await writer.drain()

    async def main() -> None:
        async with Server(script) as server:
            http = UpstreamHTTP()
            answer = await http.post(server.url, JSON, b"{}", stream=True, options=OPTIONS)
            assert answer.chunks is not None
            got = []
            with pytest.raises(UpstreamError, match="broke off the stream"):
                async for chunk in answer.chunks:
                    got.append(chunk)
            assert got == [b"data: 1\n\n"]
            await http.aclose()

    run(main())


def test_unreachable_upstream_and_unsafe_header() -> None:
    async def main() -> None:
        http = UpstreamHTTP()
        async with Server(keep_alive(response(b"{}"))) as server:
            url = server.url
            with pytest.raises(GatewayError, match="line break") as caught:
                await http.post(url, {"Authorization": "Bearer k\r\nX-Evil: 1"}, b"{}", stream=False, options=OPTIONS)
            assert "Bearer" not in caught.value.message
        with pytest.raises(UpstreamError, match="cannot reach upstream"):
            await http.post(url, JSON, b"{}", stream=False, options=OPTIONS)
        await http.aclose()

    run(main())


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"openssl cannot make a test certificate: {exc}")
    return cert, key


def test_https_upstream_verified_against_the_trust_store(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)

    async def main() -> None:
        async with Server(keep_alive(response(b'{"tls":true}')), tls=server_tls) as server:
            trusting = UpstreamHTTP(tls=ssl.create_default_context(cafile=str(cert)))
            answer = await trusting.post(server.url, JSON, b"{}", stream=False, options=OPTIONS)
            assert answer.body == b'{"tls":true}'
            await trusting.aclose()
            system = UpstreamHTTP()  # a self-signed certificate is not in the system's store
            with pytest.raises(UpstreamError, match="cannot reach upstream"):
                await system.post(server.url, JSON, b"{}", stream=False, options=OPTIONS)
            await system.aclose()

    run(main())
