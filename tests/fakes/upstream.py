"""A fake LLM provider on loopback that speaks OpenAI (chat, embeddings, responses, models), Azure OpenAI
routes and Anthropic Messages over real HTTP/SSE.

The gateway's job is mostly wire-level (pass-through, streaming, retries, usage accounting), so the fake
has to be a real server the gateway and the official SDKs can talk to, and deterministic so tests can assert
exact bytes and numbers (see ``tests/fakes/wire.py`` for the constants and payload shapes).

Answers (constants re-exported here): text is ``fake_reply(last user text)`` = "Hello from fake upstream:
<text>"; prompt/input tokens ``FAKE_PROMPT_TOKENS`` = 12, cached ``FAKE_CACHED_TOKENS`` = 2, Anthropic cache
creation ``FAKE_CACHE_CREATION_TOKENS`` = 3, reasoning 0; completion tokens = ``word_count(reply)``, or
``FAKE_TOOL_COMPLETION_TOKENS`` = 7 for a tool call. With ``tools`` the first tool is called with
``FAKE_TOOL_ARGUMENTS`` = '{"city": "Paris"}' unless the conversation ends in a tool result. A max_tokens
below the reply's word count truncates it (finish_reason "length" / stop_reason "max_tokens").

Misbehaviour is chosen per request by magic tokens anywhere in the last user text (so tests running in
parallel against one fake don't interfere), or globally with ``set_mode`` (same token syntax):

* ``FAKE_ERROR_<status>``  e.g. FAKE_ERROR_429: that status with an OpenAI- or Anthropic-style error body.
* ``FAKE_SLOW`` / ``FAKE_SLOW=<seconds>``: sleep ``slow_seconds`` (or the given value) before answering.
* ``FAKE_DROP``: streams send 2 frames then the connection is closed (no [DONE]); non-stream requests get
  the connection closed without a response.
* ``FAKE_GARBAGE``: streams send 1 valid frame, then ``data: {not json``, then close; non-stream requests
  get a 200 with an invalid JSON body.
* ``FAKE_HANG_STREAM``: streams send 1 frame then stall until the client goes away; non-stream requests
  stall without answering.
* ``FAKE_CHUNK_DELAY=<seconds>`` / ``FAKE_CHUNKS=<n>``: per-request streaming pace and granularity.

Tokens combine (``FAKE_SLOW=0.2 FAKE_DROP``); per-request tokens win over the global mode field by field.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from . import wire, wire_extras
from .behaviour import GARBAGE_FRAME as GARBAGE_FRAME
from .behaviour import TRIGGER_DROP as TRIGGER_DROP
from .behaviour import TRIGGER_GARBAGE as TRIGGER_GARBAGE
from .behaviour import TRIGGER_HANG_STREAM as TRIGGER_HANG_STREAM
from .behaviour import TRIGGER_SLOW as TRIGGER_SLOW
from .behaviour import Behaviour as Behaviour
from .behaviour import has_trigger
from .behaviour import trigger_error as trigger_error
from .serving import LOOPBACK, RunningServer, run_aiohttp_in_thread

# Re-exported (redundant aliases) so a test needs a single import for the numbers it asserts on.
from .wire import FAKE_CACHE_CREATION_TOKENS as FAKE_CACHE_CREATION_TOKENS
from .wire import FAKE_CACHED_TOKENS as FAKE_CACHED_TOKENS
from .wire import FAKE_PROMPT_TOKENS as FAKE_PROMPT_TOKENS
from .wire import FAKE_REASONING_TOKENS as FAKE_REASONING_TOKENS
from .wire import FAKE_REPLY_PREFIX as FAKE_REPLY_PREFIX
from .wire import FAKE_TOOL_ARGUMENTS as FAKE_TOOL_ARGUMENTS
from .wire import FAKE_TOOL_CALL_ID as FAKE_TOOL_CALL_ID
from .wire import FAKE_TOOL_COMPLETION_TOKENS as FAKE_TOOL_COMPLETION_TOKENS
from .wire import FAKE_TOOL_INPUT as FAKE_TOOL_INPUT
from .wire import FAKE_TOOL_USE_ID as FAKE_TOOL_USE_ID
from .wire import fake_reply as fake_reply
from .wire import word_count as word_count
from .wire_extras import FAKE_EMBEDDING_DIM as FAKE_EMBEDDING_DIM
from .wire_extras import fake_embedding as fake_embedding


@dataclass
class RecordedRequest:
    """One request as the fake saw it; headers are lower-cased so lookups don't depend on client casing."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    received_at: float = field(default_factory=time.monotonic)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RECORD = web.RequestKey("fake_record", RecordedRequest)
SEQ = web.RequestKey("fake_seq", int)
CLOSED_ON_PURPOSE = web.RequestKey("fake_closed", bool)


class FakeUpstream:
    """State and handlers of the fake; ``start()`` serves a fresh aiohttp app on loopback."""

    def __init__(self, *, stream_chunks: int = 5, chunk_delay: float = 0.0, slow_seconds: float = 5.0) -> None:
        self.stream_chunks = stream_chunks
        self.chunk_delay = chunk_delay
        self.slow_seconds = slow_seconds
        self.models: list[str] = list(wire_extras.DEFAULT_MODELS)
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._disconnects: list[RecordedRequest] = []
        self._mode = ""
        self._mode_times: int | None = None
        self._ids = itertools.count(1)
        self._server: RunningServer | None = None
        self._tls = False

    # ------------------------------------------------------------------------------------- test-side API

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of every request received so far (including ones answered with errors)."""
        with self._lock:
            return list(self._requests)

    @property
    def disconnects(self) -> list[RecordedRequest]:
        """Requests whose client went away before the response was finished."""
        with self._lock:
            return list(self._disconnects)

    def last_request(self) -> RecordedRequest:
        with self._lock:
            if not self._requests:
                raise AssertionError("fake upstream has received no requests")
            return self._requests[-1]

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._disconnects.clear()
            self._mode, self._mode_times = "", None

    def set_mode(self, mode: str | None, *, times: int | None = None) -> None:
        """Apply trigger tokens (e.g. "FAKE_ERROR_503") to every request; times=N reverts after N requests."""
        if mode and not has_trigger(mode):
            raise ValueError(f"no FAKE_* trigger token in mode {mode!r}")
        with self._lock:
            self._mode = mode or ""
            self._mode_times = times

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        return self._wait(lambda: self.requests, n, timeout, "requests")

    def wait_for_disconnects(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        return self._wait(lambda: self.disconnects, n, timeout, "disconnects")

    @staticmethod
    def _wait(get: Callable[[], list[RecordedRequest]], n: int, timeout: float, what: str) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout
        while len(items := get()) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {n} {what}, got {len(items)} after {timeout}s")
            time.sleep(0.01)
        return items

    # ------------------------------------------------------------------------------------------ lifecycle

    def start(self, port: int = 0, ssl_context: ssl.SSLContext | None = None) -> FakeUpstream:
        """With `ssl_context` it speaks HTTPS, and `url` names it `localhost` (so certificates name a host)."""
        self._tls = ssl_context is not None
        self._server = run_aiohttp_in_thread(self.make_app(), port=port, ssl_context=ssl_context)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "fake upstream not started"
        return self._server.port

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}" if self._tls else f"http://{LOOPBACK}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    def __enter__(self) -> FakeUpstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app.on_response_prepare.append(self._add_request_id)
        dep = "/openai/deployments/{dep}"
        for prefix in ("/v1", "", dep):
            app.router.add_post(f"{prefix}/chat/completions", self._chat)
            app.router.add_post(f"{prefix}/embeddings", self._embeddings)
        for prefix in ("/v1", ""):
            app.router.add_post(f"{prefix}/responses", self._responses)
            app.router.add_get(f"{prefix}/models", self._models)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    # -------------------------------------------------------------------------------------------- plumbing

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        rec = RecordedRequest(
            request.method,
            request.path,
            dict(request.query),
            {k.lower(): v for k, v in request.headers.items()},
            body,
            parsed,
        )
        with self._lock:
            self._requests.append(rec)
        request[RECORD] = rec
        request[SEQ] = next(self._ids)
        try:
            return await handler(request)
        except asyncio.CancelledError:
            self._note_disconnect(request, rec)
            raise
        except ConnectionError:  # a write hit a closed socket: expected in these tests, so no traceback
            self._note_disconnect(request, rec)
            return web.Response(status=499)

    def _note_disconnect(self, request: web.Request, rec: RecordedRequest) -> None:
        if not request.get(CLOSED_ON_PURPOSE):
            with self._lock:
                self._disconnects.append(rec)

    @staticmethod
    async def _add_request_id(request: web.Request, response: web.StreamResponse) -> None:
        rid = f"req_fake_{request.get(SEQ, 0):06d}"
        response.headers.setdefault("x-request-id", rid)
        response.headers.setdefault("request-id", rid)

    def _behaviour(self, text: str) -> Behaviour:
        with self._lock:
            base = self._mode
            if self._mode_times is not None:
                self._mode_times -= 1
                if self._mode_times <= 0:
                    self._mode, self._mode_times = "", None
        return Behaviour.parse(text, self.slow_seconds).over(Behaviour.parse(base, self.slow_seconds))

    @staticmethod
    def _body(request: web.Request) -> dict[str, Any]:
        parsed = request[RECORD].json
        return parsed if isinstance(parsed, dict) else {}

    async def _prelude(
        self, request: web.Request, beh: Behaviour, stream: bool, error: Callable[[int], dict[str, Any]]
    ) -> web.StreamResponse | None:
        """Apply errors/slowness/non-stream faults; returns a response if the normal answer is pre-empted."""
        if beh.slow:
            await asyncio.sleep(beh.slow)
        if beh.error_status is not None:
            return web.json_response(error(beh.error_status), status=beh.error_status)
        if stream or beh.fault is None:
            return None
        if beh.fault == "garbage":
            return web.Response(status=200, body=b"{not json", content_type="application/json")
        if beh.fault == "drop":
            self._close(request)
            return web.Response(status=500)
        await self._hang(request)
        return web.Response(status=504)

    @staticmethod
    def _close(request: web.Request) -> None:
        request[CLOSED_ON_PURPOSE] = True
        if request.transport is not None:
            request.transport.close()

    @staticmethod
    async def _hang(request: web.Request) -> None:
        # Ends by cancellation: aiohttp cancels the handler when the client disconnects (or at shutdown).
        await asyncio.get_running_loop().create_future()

    async def _stream(self, request: web.Request, frames: list[str], beh: Behaviour) -> web.StreamResponse:
        resp = web.StreamResponse(
            status=200,
            headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"},
        )
        await resp.prepare(request)
        delay = self.chunk_delay if beh.chunk_delay is None else beh.chunk_delay
        for i, frame in enumerate(frames):
            if beh.fault == "drop" and i == 2:
                self._close(request)
                return resp
            if beh.fault == "garbage" and i == 1:
                await resp.write(GARBAGE_FRAME.encode())
                self._close(request)
                return resp
            if beh.fault == "hang" and i == 1:
                await self._hang(request)
            if i and delay:
                await asyncio.sleep(delay)
            await resp.write(frame.encode())
        await resp.write_eof()
        return resp

    def _chunks(self, beh: Behaviour) -> int:
        return beh.chunks or self.stream_chunks

    # -------------------------------------------------------------------------------------------- handlers

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = self._body(request)
        beh = self._behaviour(wire.last_user_text(body.get("messages")))
        stream = bool(body.get("stream"))
        if (early := await self._prelude(request, beh, stream, wire.openai_error)) is not None:
            return early
        model = body.get("model") or request.match_info.get("dep") or "fake-model"
        rid = f"chatcmpl-fake-{request[SEQ]:06d}"
        answer = wire.openai_chat_answer(body)
        if not stream:
            return web.json_response(wire.openai_chat_completion(rid, model, answer))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        frames = wire.openai_chat_stream(rid, model, answer, self._chunks(beh), include_usage)
        return await self._stream(request, frames, beh)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = self._body(request)
        beh = self._behaviour(wire.last_user_text(body.get("messages")))
        stream = bool(body.get("stream"))
        if (early := await self._prelude(request, beh, stream, wire.anthropic_error)) is not None:
            return early
        rid = f"msg_fake_{request[SEQ]:06d}"
        answer = wire.anthropic_answer(body)
        model = body.get("model") or "fake-model"
        if not stream:
            return web.json_response(wire.anthropic_message(rid, model, answer))
        return await self._stream(request, wire.anthropic_stream(rid, model, answer, self._chunks(beh)), beh)

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        beh = self._behaviour(wire.last_user_text(self._body(request).get("messages")))
        if (early := await self._prelude(request, beh, False, wire.anthropic_error)) is not None:
            return early
        return web.json_response({"input_tokens": FAKE_PROMPT_TOKENS})

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body = self._body(request)
        beh = self._behaviour(" ".join(wire_extras.embedding_inputs(body.get("input"))))
        if (early := await self._prelude(request, beh, False, wire.openai_error)) is not None:
            return early
        model = body.get("model") or request.match_info.get("dep") or "fake-embedding"
        return web.json_response(wire_extras.embeddings_response(body, model))

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        body = self._body(request)
        beh = self._behaviour(wire_extras.responses_input_text(body))
        stream = bool(body.get("stream"))
        if (early := await self._prelude(request, beh, stream, wire.openai_error)) is not None:
            return early
        rid = f"resp_fake_{request[SEQ]:06d}"
        answer = wire_extras.responses_answer(body)
        model = body.get("model") or "fake-model"
        if not stream:
            return web.json_response(wire_extras.responses_object(rid, model, answer, body))
        return await self._stream(
            request, wire_extras.responses_stream(rid, model, answer, body, self._chunks(beh)), beh
        )

    async def _models(self, request: web.Request) -> web.StreamResponse:
        beh = self._behaviour("")
        if (early := await self._prelude(request, beh, False, wire.openai_error)) is not None:
            return early
        return web.json_response(wire_extras.models_list(self.models))

    @staticmethod
    async def _not_found(request: web.Request) -> web.StreamResponse:
        err = wire.openai_error(404)
        err["error"].update(message=f"fake upstream has no route {request.method} {request.path}", code=None)
        return web.json_response(err, status=404)


def start_fake_upstream(
    *, port: int = 0, stream_chunks: int = 5, chunk_delay: float = 0.0, slow_seconds: float = 5.0
) -> FakeUpstream:
    """Build and serve a FakeUpstream; use as a context manager or call ``stop()``."""
    fake = FakeUpstream(stream_chunks=stream_chunks, chunk_delay=chunk_delay, slow_seconds=slow_seconds)
    return fake.start(port=port)
