"""Closed-loop load generator: `python -m bench.loadgen --url URL --mode stream --concurrency 16 --duration 5`.

`--concurrency` workers each keep one keep-alive connection and one request in flight. Requests are
pre-serialized bytes and answers are parsed with httptools (C), so the generator spends a few
microseconds per call and the machine's cores go to the thing being measured.

Phases: warm-up (not counted), then, with `--handshake`, it prints `ready` and waits for a line on stdin
(the benchmark reads the proxy's CPU counters in between), then measures for `--duration` seconds and
prints one JSON line: count, errors, requests/s, latency and time-to-first-byte percentiles (ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from array import array
from typing import Any
from urllib.parse import urlsplit

import httptools

PROMPT = "Say hello in one short sentence."


def request_bytes(url: str, model: str, stream: bool, include_usage: bool = False, api_key: str = "sk-bench") -> bytes:
    parts = urlsplit(url)
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 32,
    }
    if stream:
        body["stream"] = True
        if include_usage:
            body["stream_options"] = {"include_usage": True}
    data = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {api_key}\r\nUser-Agent: llm-scope-bench/1\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


class Conn(asyncio.Protocol):
    """One keep-alive connection, one request at a time."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, float, bytes, bytes, bool]] | None = None
        self.first = 0.0
        self.head = b""
        self.tail = b""
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(ConnectionError(f"bad HTTP: {exc}"))
            if self.transport is not None:
                self.transport.close()

    def send(self, data: bytes) -> asyncio.Future[tuple[int, float, bytes, bytes, bool]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.first, self.head, self.tail = 0.0, b"", b""
        self.transport.write(data)
        return self.waiter

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        if not self.first:
            self.first = time.perf_counter()
            self.head = body[:300]
        self.tail = (self.tail + body)[-48:]

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(
                (self.parser.get_status_code(), self.first, self.head, self.tail, self.parser.should_keep_alive())
            )


def summary_ms(values: array[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "mean": None, "max": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))] * 1000

    return {
        "p50": at(50),
        "p90": at(90),
        "p99": at(99),
        "mean": sum(ordered) / len(ordered) * 1000,
        "max": ordered[-1] * 1000,
    }


class Load:
    def __init__(self, url: str, model: str, mode: str, include_usage: bool, api_key: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.requests = {
            False: request_bytes(url, model, False, api_key=api_key),
            True: request_bytes(url, model, True, include_usage, api_key),
        }
        self.mode = mode
        self.stop_at = 0.0
        self.lat: array[float] = array("d")
        self.ttft: array[float] = array("d")
        self.count = 0
        self.total = 0  # every answered call, warm-up included (to check the proxy traced them all)
        self.errors = 0
        self.error_samples: list[str] = []
        self.conns: dict[int, Conn] = {}

    async def connect(self, i: int) -> Conn:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(Conn, self.host, self.port)
        self.conns[i] = conn
        return conn

    def _error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(text[:300])

    async def worker(self, i: int, record: bool) -> None:
        n = i
        while time.perf_counter() < self.stop_at:
            stream = self.mode == "stream" or (self.mode == "mixed" and n % 2 == 1)
            n += 1
            conn = self.conns.get(i)
            try:
                if conn is None or conn.closed:
                    conn = await self.connect(i)
                t0 = time.perf_counter()
                status, first, head, tail, keep = await conn.send(self.requests[stream])
            except (ConnectionError, OSError) as exc:
                self.conns.pop(i, None)
                if record:
                    self._error(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.01)
                continue
            t1 = time.perf_counter()
            self.total += 1
            if not keep and conn.transport is not None:
                conn.transport.close()
                self.conns.pop(i, None)
            if not record:
                continue
            if status != 200:
                self._error(f"HTTP {status}: {head.decode(errors='replace')}")
            elif stream and b"[DONE]" not in tail:
                self._error(f"stream ended without [DONE]: ...{tail.decode(errors='replace')}")
            else:
                self.count += 1
                self.lat.append(t1 - t0)
                if stream:
                    self.ttft.append(first - t0)

    async def phase(self, concurrency: int, seconds: float, record: bool, grace: float = 30.0) -> float:
        start = time.perf_counter()
        self.stop_at = start + seconds
        tasks = [asyncio.ensure_future(self.worker(i, record)) for i in range(concurrency)]
        done, pending = await asyncio.wait(tasks, timeout=seconds + grace)
        for task in pending:
            task.cancel()
            if record:
                self._error("request still unanswered after the grace period")
        for task in done:
            if task.exception() is not None and record:
                self._error(repr(task.exception()))
        return time.perf_counter() - start


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load = Load(args.url, args.model, args.mode, args.include_usage, args.api_key)
    if args.warmup > 0:
        await load.phase(args.concurrency, args.warmup, record=False)
    if args.handshake:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    wall = await load.phase(args.concurrency, args.duration, record=True)
    for conn in load.conns.values():
        if conn.transport is not None:
            conn.transport.close()
    return {
        "mode": args.mode,
        "concurrency": args.concurrency,
        "count": load.count,
        "total": load.total,
        "errors": load.errors,
        "error_samples": load.error_samples,
        "wall_s": wall,
        "rps": load.count / wall if wall > 0 else 0.0,
        "latency_ms": summary_ms(load.lat),
        "ttft_ms": summary_ms(load.ttft),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", default="bench-model")
    parser.add_argument("--mode", choices=("nonstream", "stream", "mixed"), default="nonstream")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--api-key", default="sk-bench", help="sent as 'Authorization: Bearer KEY'")
    parser.add_argument("--include-usage", action="store_true", help="ask for stream_options.include_usage")
    parser.add_argument("--handshake", action="store_true", help="print 'ready' and wait for a stdin line")
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()  # type: ignore[no-untyped-call]
    except ImportError:
        pass
    result = asyncio.run(run(args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
