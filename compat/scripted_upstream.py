"""The scripted upstream: a real loopback server speaking OpenAI chat + Responses and Anthropic Messages.

It answers from the conversation state (see ``compat/script.py``) and keeps a log of every request it
got (path, auth seen, model, stream flag, tool names, the rule that answered) at ``GET /_compat/log``, so
the runner can prove what reached the upstream through the gateway. It checks the upstream key the
gateway must send (never the client's gateway key).

    python -m compat.scripted_upstream --port 8765 [--key KEY] [--dump FILE] [--egress-port 8766]

With ``--egress-port`` the same process also runs the egress recorder (``compat/egress.py``); its log is
at ``GET /_compat/egress``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from . import wire
from .egress import EgressRecorder
from .script import Format, Json, decide, parse

CHUNK_DELAY = 0.005  # seconds between SSE events, so time to first token is distinct from duration

BUILDERS = {
    "chat": (wire.chat_body, wire.chat_stream),
    "responses": (wire.responses_body, wire.responses_stream),
    "messages": (wire.messages_body, wire.messages_stream),
}


def _error(fmt: Format, status: int, message: str) -> web.Response:
    if fmt == "messages":
        body: Json = {"type": "error", "error": {"type": "authentication_error", "message": message}}
    else:
        body = {"error": {"message": message, "type": "invalid_request_error", "code": None, "param": None}}
    return web.json_response(body, status=status)


class ScriptedUpstream:
    def __init__(self, key: str | None, dump: Path | None) -> None:
        self.key = key
        self.dump = dump
        self.log: list[Json] = []
        self.egress = EgressRecorder()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for prefix in ("", "/v1"):
            app.router.add_post(f"{prefix}/chat/completions", self.handler("chat"))
            app.router.add_post(f"{prefix}/responses", self.handler("responses"))
            app.router.add_post(f"{prefix}/messages", self.handler("messages"))
            app.router.add_post(f"{prefix}/messages/count_tokens", self.count_tokens)
            app.router.add_get(f"{prefix}/models", self.models)
        app.router.add_get("/_compat/log", self.get_log)
        app.router.add_get("/_compat/egress", self.get_egress)
        app.router.add_post("/_compat/reset", self.reset)
        app.router.add_get("/health", self.health)
        return app

    def _auth_ok(self, fmt: Format, request: web.Request) -> tuple[bool, str]:
        seen = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        return (self.key is None or seen == self.key), seen

    def _record(self, entry: Json, body: Json) -> None:
        self.log.append(entry)
        if self.dump is not None:
            with self.dump.open("a") as f:
                f.write(json.dumps({**entry, "body": body}) + "\n")

    def handler(self, fmt: Format) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            body = await request.json()
            ok, seen = self._auth_ok(fmt, request)
            reply = decide(fmt, body)
            conv = parse(fmt, body)
            entry = {
                "time": time.time(),
                "path": request.path,
                "format": fmt,
                "model": body.get("model"),
                "stream": bool(body.get("stream")),
                "auth_ok": ok,
                "tools": [t["name"] for t in conv.tools],
                "tool_results": len(conv.tool_results),
                "rule": reply.rule,
                "tool_call": {"name": reply.tool.name, "arguments": reply.tool.arguments} if reply.tool else None,
                "text": reply.text,
                "user_agent": request.headers.get("user-agent"),
                "anthropic_beta": request.headers.get("anthropic-beta"),
            }
            self._record(entry, body)
            if not ok:
                return _error(fmt, 401, f"scripted upstream: wrong upstream key {seen[:4]}…")
            whole, stream = BUILDERS[fmt]
            if not body.get("stream"):
                return web.json_response(whole(body, reply))
            response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
            await response.prepare(request)
            for event in stream(body, reply):
                await response.write(event)
                await asyncio.sleep(CHUNK_DELAY)
            await response.write_eof()
            return response

        return handle

    async def count_tokens(self, request: web.Request) -> web.Response:
        body = await request.json()
        ok, _ = self._auth_ok("messages", request)
        self._record(
            {
                "time": time.time(),
                "path": request.path,
                "format": "count_tokens",
                "auth_ok": ok,
                "model": body.get("model"),
                "rule": "count_tokens",
            },
            body,
        )
        if not ok:
            return _error("messages", 401, "scripted upstream: wrong upstream key")
        return web.json_response({"input_tokens": wire.estimate_tokens(body)})

    async def models(self, request: web.Request) -> web.Response:
        names = ["compat-codex", "compat-aider", "compat-llm", "claude-sonnet-4-5"]
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": n, "object": "model", "created": wire.CREATED, "owned_by": "compat"} for n in names],
            }
        )

    async def get_log(self, request: web.Request) -> web.Response:
        return web.json_response(self.log)

    async def get_egress(self, request: web.Request) -> web.Response:
        return web.json_response(self.egress.attempts)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def reset(self, request: web.Request) -> web.Response:
        self.log.clear()
        return web.json_response({"ok": True})


async def serve(args: argparse.Namespace) -> None:
    upstream = ScriptedUpstream(args.key, args.dump)
    runner = web.AppRunner(upstream.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    if args.egress_port:
        await upstream.egress.start(args.host, args.egress_port)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", default=None, help="the upstream key the gateway must present")
    parser.add_argument("--dump", type=Path, default=None, help="append every request (with body) as JSONL")
    parser.add_argument("--egress-port", type=int, default=0, help="also run the egress recorder on this port")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
