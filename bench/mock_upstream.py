"""A fast OpenAI-compatible mock upstream: `python -m bench.mock_upstream --port 9101`.

- `POST /v1/chat/completions` (and `/chat/completions`): a `chat.completion` JSON body with `usage`, or,
  with `"stream": true`, an SSE stream of `--chunks` content events (default 20) `--delay-ms` apart
  (default 0), a finish event, a usage event when `stream_options.include_usage` is set (every other
  event then carries `"usage": null`, as OpenAI does), and `data: [DONE]`.
- Per request, headers `x-mock-chunks` and `x-mock-delay-ms` override the defaults.
- `GET /health` answers 200; `GET /stats` the number of calls served.

Answers are built once per shape and cached, so a call costs a JSON parse of the request and one write.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from functools import lru_cache

from bench.httpserver import Exchange, Request, serve

CHAT_PATHS = (b"/v1/chat/completions", b"/chat/completions")
PROMPT_TOKENS = 12
stats = {"chat": 0, "stream": 0}


def _event(obj: dict[str, object]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


@lru_cache(maxsize=256)
def completion_body(model: str, chunks: int) -> bytes:
    text = " ".join(f"word{i}" for i in range(chunks))
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": chunks,
                "total_tokens": PROMPT_TOKENS + chunks,
            },
            "system_fingerprint": "fp_bench",
        },
        separators=(",", ":"),
    ).encode()


@lru_cache(maxsize=256)
def stream_events(model: str, chunks: int, include_usage: bool) -> tuple[bytes, ...]:
    created = int(time.time())
    base: dict[str, object] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "fp_bench",
    }
    extra: dict[str, object] = {"usage": None} if include_usage else {}
    events = []
    for i in range(chunks):
        delta: dict[str, object] = {"content": f"word{i} " if i < chunks - 1 else f"word{i}"}
        if i == 0:
            delta = {"role": "assistant", **delta}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        events.append(_event({**base, "choices": [choice], **extra}))
    events.append(
        _event({**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}], **extra})
    )
    if include_usage:
        usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": chunks, "total_tokens": PROMPT_TOKENS + chunks}
        events.append(_event({**base, "choices": [], "usage": usage}))
    events.append(b"data: [DONE]\n\n")
    return tuple(events)


def make_handler(default_chunks: int, default_delay_ms: float):  # type: ignore[no-untyped-def]
    def handler(request: Request, ex: Exchange) -> asyncio.Future[None] | None:
        if request.method == b"POST" and request.path in CHAT_PATHS:
            try:
                body = json.loads(request.body)
            except ValueError:
                ex.send(400, b'{"error":{"message":"invalid JSON","type":"invalid_request_error"}}')
                return None
            model = str(body.get("model") or "mock")
            chunks = int(request.headers.get(b"x-mock-chunks", default_chunks))
            delay = float(request.headers.get(b"x-mock-delay-ms", default_delay_ms)) / 1000
            stats["chat"] += 1
            if not body.get("stream"):
                ex.send(200, completion_body(model, chunks))
                return None
            stats["stream"] += 1
            options = body.get("stream_options") or {}
            events = stream_events(model, chunks, bool(isinstance(options, dict) and options.get("include_usage")))
            ex.start_stream()
            if delay <= 0:
                ex.chunks(list(events))
                ex.end_stream()
                return None
            return asyncio.ensure_future(_slow_stream(ex, events, delay))
        if request.method == b"GET" and request.path == b"/health":
            ex.send(200, b'{"status":"ok"}')
        elif request.method == b"GET" and request.path == b"/stats":
            ex.send(200, json.dumps(stats).encode())
        else:
            ex.send(404, b'{"error":{"message":"not found","type":"invalid_request_error"}}')
        return None

    return handler


async def _slow_stream(ex: Exchange, events: tuple[bytes, ...], delay: float) -> None:
    for i, event in enumerate(events):
        if i:
            await asyncio.sleep(delay)
        ex.chunk(event)
    ex.end_stream()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9101)
    parser.add_argument("--chunks", type=int, default=20, help="content events per stream (default 20)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="delay between stream events (default 0)")
    parser.add_argument("--reuse-port", action="store_true", help="share the port with other mock processes")
    args = parser.parse_args()
    serve(make_handler(args.chunks, args.delay_ms), args.host, args.port, "mock upstream", args.reuse_port)


if __name__ == "__main__":
    main()
