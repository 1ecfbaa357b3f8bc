"""cli.BodyProtocol, uvicorn's httptools protocol as the gateway serves with it: a request body reaches the app
whole and exact, in one copy, without reading paused half-way; multi-chunk bodies and pipelining as before.

The protocol is driven as uvicorn's loop drives it (its `data_received` with the bytes a read returned), on a
real socket pair, in front of a real ASGI app that records what `receive` gives it.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import tracemalloc
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from llm_scope import cli


class Served:
    """One protocol instance on a socket pair, and the messages its app received, per request."""

    def __init__(self, http: Any) -> None:
        self.requests: list[list[dict[str, Any]]] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            messages: list[dict[str, Any]] = []
            self.requests.append(messages)
            while True:
                message = await receive()
                messages.append(message)
                if not message.get("more_body"):
                    break
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        self.config = uvicorn.Config(app, http=http, lifespan="off", log_level="warning")
        self.config.load()
        self.protocol = self.config.http_protocol_class(config=self.config, server_state=ServerState(), app_state={})
        self.ours, self.theirs = socket.socketpair()

    async def start(self) -> asyncio.Transport:
        transport, _ = await asyncio.get_running_loop().connect_accepted_socket(lambda: self.protocol, self.ours)
        return transport

    async def settle(self) -> None:
        while self.protocol.tasks:
            await asyncio.gather(*self.protocol.tasks)
        await asyncio.sleep(0)

    def close(self) -> None:
        self.theirs.close()


def post(body: bytes) -> bytes:
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def test_the_gateway_serves_with_it() -> None:
    assert cli.server_protocol() is cli.BodyProtocol  # uvicorn here is the tested version
    assert pickle.loads(pickle.dumps(cli.BodyProtocol)) is cli.BodyProtocol  # as uvicorn's workers get it


def test_a_long_body_arrives_whole_in_one_copy_with_reading_on() -> None:
    body = bytes(range(256)) * 2048  # 512 KB: past uvicorn's 64 KB, under PAUSE_BYTES
    request = post(body)

    async def main() -> tuple[Served, bool, int]:
        served = Served(cli.server_protocol())
        transport = await served.start()
        tracemalloc.start()
        served.protocol.data_received(request)  # what one read of the socket returned
        reading = transport.is_reading()
        await served.settle()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        transport.close()
        served.close()
        return served, reading, peak

    served, reading, peak = asyncio.run(main())
    [messages] = served.requests
    assert [m["body"] for m in messages] == [body] and messages[-1]["more_body"] is False
    assert reading  # uvicorn's own protocol pauses reading past 64 KB
    assert peak < 1.5 * len(body)  # the parser's bytes alone; uvicorn's keeps a bytearray and bytes(...) of it too


def test_a_body_in_pieces_and_past_the_pause_bound_arrives_exact() -> None:
    body = b"".join(i.to_bytes(4, "big") for i in range(700_000))  # 2.8 MB, past PAUSE_BYTES
    request = post(body)
    pieces = [request[i : i + 300_000] for i in range(0, len(request), 300_000)]

    async def main() -> tuple[Served, list[bool]]:
        served = Served(cli.server_protocol())
        transport = await served.start()
        reading = []
        for piece in pieces:
            served.protocol.data_received(piece)
            reading.append(transport.is_reading())
            await asyncio.sleep(0)  # the app's task may or may not read between two pieces
        await served.settle()
        transport.close()
        served.close()
        return served, reading

    served, reading = asyncio.run(main())
    [messages] = served.requests
    assert b"".join(m["body"] for m in messages) == body
    assert [m["more_body"] for m in messages][-1] is False and all(m["more_body"] for m in messages[:-1])
    assert reading[-1]  # the app read what was buffered, so reading went on


@pytest.mark.parametrize("sizes", [(0, 10), (70_000, 3), (200_000, 0)])
def test_pipelined_requests_each_get_their_own_body(sizes: tuple[int, int]) -> None:
    bodies = [bytes([65 + i]) * size for i, size in enumerate(sizes)]

    async def main() -> Served:
        served = Served(cli.server_protocol())
        transport = await served.start()
        served.protocol.data_received(b"".join(post(b) for b in bodies))
        for _ in range(len(bodies)):
            await served.settle()
        transport.close()
        served.close()
        return served

    served = asyncio.run(main())
    assert [b"".join(m["body"] for m in messages) for messages in served.requests] == bodies
