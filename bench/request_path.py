"""The API request path in process, no sockets: `python -m bench.request_path [--calls N]`.

Drives `create_app`'s ASGI app directly with the mock model (trace helper included) and prints, per case, the
CPU time per call (best and median of five repeats; noisy on a shared machine) and the Python and C function
calls per request (deterministic: a refactor that adds work per call or per chunk shows here first).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llm_scope.app import create_app
from llm_scope.settings import load_settings

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
HI = [{"role": "user", "content": "hi there"}]
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "chat": ("/v1/chat/completions", {"model": "mock-gpt", "messages": HI}),
    "chat stream": ("/v1/chat/completions", {"model": "mock-gpt", "stream": True, "messages": HI}),
    "messages": ("/v1/messages", {"model": "mock-gpt", "max_tokens": 10, "messages": HI}),
    "messages stream": ("/v1/messages", {"model": "mock-gpt", "max_tokens": 10, "stream": True, "messages": HI}),
}


async def call(app: App, path: str, body: bytes) -> None:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        return None

    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": headers,
        "query_string": b"",
        "scheme": "http",
        "server": ("127.0.0.1", 1),
        "client": ("127.0.0.1", 2),
        "root_path": "",
        "http_version": "1.1",
    }
    await app(scope, receive, send)


async def measure(calls: int) -> None:
    settings = load_settings({}, env_file=None, data_dir=Path(tempfile.mkdtemp()) / "data", metrics_port=0)
    app: App = create_app(settings)  # type: ignore[assignment]
    lifespan: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    await lifespan.put({"type": "lifespan.startup"})
    started = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"].startswith("lifespan.startup"):
            started.set()

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, lifespan.get, send))
    await started.wait()
    for name, (path, body) in CASES.items():
        raw = json.dumps(body).encode()
        for _ in range(300):
            await call(app, path, raw)
        repeats = []
        for _ in range(5):
            began = time.process_time()
            for _ in range(calls):
                await call(app, path, raw)
            repeats.append((time.process_time() - began) / calls * 1e6)
            await asyncio.sleep(0.3)  # let the finished calls' records go out
        counted = 0

        def count(frame: FrameType, event: str, arg: Any) -> None:
            nonlocal counted
            counted += event in ("call", "c_call")

        sys.setprofile(count)
        for _ in range(100):
            await call(app, path, raw)
        sys.setprofile(None)
        repeats.sort()
        print(f"{name:16} {repeats[0]:7.1f} µs best {repeats[2]:7.1f} µs median  {counted / 100:7.1f} calls/request")
    await lifespan.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(task, 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per repeat")
    asyncio.run(measure(parser.parse_args().calls))


if __name__ == "__main__":
    main()
