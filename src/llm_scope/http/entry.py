"""The one ASGI layer every request passes through, and the direct path for the API routes.

It mints the trace id, stamps `X-Trace-ID` / `X-Duration-Ms` on every response, checks keys, applies
overload protection and counts in-flight calls, then hands API calls (chat completions, messages,
responses, embeddings) straight to their handler; everything else (dashboard, read API, admin, health)
goes to the Starlette app. One flat layer instead of four middlewares plus Starlette's routing and
exception layers: each of those wraps every `send` and every coroutine resume, and on a call whose whole
budget is a few hundred microseconds of CPU they cost tens of them (see docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..access.keys import VirtualKey
from ..apis import ApiFamily, anthropic_shaped, by_path
from ..errors import GatewayError
from .auth import KEY_SCOPE, Auth
from .responses import RawResponse, error_response, send_whole
from .state import AppState, attach

log = logging.getLogger("llm_scope.http")


class TraceIds:
    """128-bit trace ids: the time in milliseconds (48 bits), then 80 random bits from the OS's CSPRNG.

    Time first, as AWS X-Ray's ids and UUIDv7 do, because the local store indexes traces by id: random ids
    land all over that index, and once it outgrows SQLite's page cache every insert rewrites a page of its
    own (with 300,000 traces stored, 40 µs of CPU per stored call against 18 µs for ids in time order,
    measured). 80 random bits keep ids unguessable and unique across workers (a clash needs ~10^12 ids in
    one millisecond). The random bytes are fetched 4 KB at a time (one getrandom() per call measured
    0.5-8 µs here); the buffer is dropped in a forked child so two processes never hand out the same ids.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._at = 0
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._buffer, self._at = b"", 0

    def new(self) -> str:
        at = self._at
        if at + 10 > len(self._buffer):
            self._buffer, at = os.urandom(4000), 0
        self._at = at + 10
        millis = time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF
        return (millis.to_bytes(6, "big") + self._buffer[at : at + 10]).hex()


class Incoming:
    """What an API handler needs of a request: no Starlette Request, no header re-parsing per lookup."""

    __slots__ = ("headers", "receive", "scope", "start_time", "trace_id", "virtual_key")

    def __init__(
        self, scope: Scope, receive: Receive, trace_id: str, start_time: float, virtual_key: VirtualKey | None
    ) -> None:
        self.scope = scope
        self.receive = receive
        # Header names arrive lower-cased (ASGI); the first of a repeated header wins, as in Starlette.
        self.headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(scope["headers"])}
        self.trace_id = trace_id
        self.start_time = start_time
        self.virtual_key = virtual_key


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


Serve = Callable[[Incoming, ApiFamily], Awaitable[ASGIApp]]


class Admission:
    """Overload protection: at most `limit` API calls at once, `queue` more waiting; beyond that, 503.

    Memory stays bounded however hard clients push, and a client told to back off (Retry-After) can go
    to another replica instead of waiting on this one. A finishing call hands its slot straight to the
    oldest waiter, so the uncontended path is two integer updates.
    """

    def __init__(
        self, limit: int, queue: int, rejected: Any = None, traces_behind: Callable[[], bool] | None = None
    ) -> None:
        self.limit = limit
        self.queue = queue
        self.rejected = rejected  # counter with a `route` label
        # LLM_SCOPE_TRACE_OVERFLOW=backpressure: refuse calls while the trace helper is behind, rather than
        # make a record that would have to wait on disk.
        self.traces_behind = traces_behind
        self.active = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def enter(self, route: str) -> GatewayError | None:
        if self.traces_behind is not None and self.traces_behind():
            if self.rejected is not None:
                self.rejected.labels(route).inc()
            return GatewayError(
                "The gateway is recording calls more slowly than they arrive; retry shortly",
                status=503,
                type="overloaded_error",
                code="overloaded",
                retry_after=1,
            )
        if self.active < self.limit and not self._waiters:
            self.active += 1
            return None
        if len(self._waiters) >= self.queue:
            if self.rejected is not None:
                self.rejected.labels(route).inc()
            return GatewayError(
                f"The gateway is at capacity ({self.limit} calls in progress, {self.queue} queued); retry shortly",
                status=503,
                type="overloaded_error",
                code="overloaded",
                retry_after=1,
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.leave()  # the slot was handed over just as this waiter was cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise
        return None

    def leave(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes to the waiter; `active` stays
                return
        self.active -= 1


class EntryLayer:
    """The application uvicorn runs. `app` is the Starlette app for everything but the API calls; `state`
    is the gateway's typed state, attached to `app` too, so its routes and tests reach the same parts. With CORS on,
    Starlette's CORS middleware wraps this whole layer, API calls included.

    The API calls are the `families`' paths, matched exactly, each handed to `serve` with its row: only they
    get an in-flight series (labelled with the family's `route`, since a label per arbitrary path would be
    unbounded) and only they pass admission control."""

    def __init__(
        self,
        app: Starlette,
        state: AppState,
        *,
        auth: Auth,
        families: Iterable[ApiFamily],
        serve: Serve,
        in_flight: Any,
        admission: Admission | None = None,
        cors_origins: list[str] | None = None,
    ) -> None:
        self.app = app
        self.state = state
        attach(app, state)
        self._entry: ASGIApp = self._dispatch
        if cors_origins:
            self._entry = CORSMiddleware(
                self._dispatch,
                allow_origins=cors_origins,
                allow_methods=["*"],
                allow_headers=["*"],
                expose_headers=["x-trace-id", "x-duration-ms"],
            )
        self.auth = auth
        self.serve = serve
        self.admission = admission
        self._trace_ids = TraceIds()
        # One lookup per request: the path's row and its in-flight gauge (one child per route label).
        self._calls = {path: (family, in_flight.labels(family.route)) for path, family in by_path(families).items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._entry(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trace_id = self._trace_ids.new()
        start = time.perf_counter()
        start_time = time.time()
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                took = f"{(time.perf_counter() - start) * 1000:.2f}".encode()
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-trace-id", trace_id.encode()),
                    (b"x-duration-ms", took),
                ]
            await send(message)

        path: str = scope["path"]
        verdict = self.auth.decide(scope)
        if isinstance(verdict, GatewayError):
            await error_response(verdict, anthropic=anthropic_shaped(path))(scope, receive, send_with_headers)
            return
        call = self._calls.get(path)
        if call is None:
            if verdict is not None:
                scope[KEY_SCOPE] = verdict
            await self.app(scope, receive, send_with_headers)
            return
        family, gauge = call
        admission = self.admission
        if admission is not None and (refused := await admission.enter(family.route)) is not None:
            await error_response(refused, anthropic=family.anthropic)(scope, receive, send_with_headers)
            return
        gauge.inc()
        try:
            if scope["method"] != "POST":
                not_allowed = GatewayError(
                    f"Method {scope['method']} is not allowed on {path}",
                    status=405,
                    type="invalid_request_error",
                    code="method_not_allowed",
                )
                await error_response(not_allowed, anthropic=family.anthropic)(scope, receive, send_with_headers)
            else:
                response = await self.serve(Incoming(scope, receive, trace_id, start_time, verdict), family)
                if type(response) is RawResponse:
                    await send_whole(response, scope, receive, send_with_headers, send)
                else:
                    await response(scope, receive, send_with_headers)
        except ClientGone:
            pass  # left while sending the request: nobody to answer
        except Exception as exc:
            # What Starlette's ServerErrorMiddleware did for these routes, in the API's own error shape.
            log.exception("unhandled error serving %s %s (trace %s)", scope["method"], path, trace_id)
            if started:
                raise
            error = GatewayError(f"Internal error ({type(exc).__name__}); trace {trace_id}", status=500)
            await error_response(error, anthropic=family.anthropic)(scope, receive, send_with_headers)
        finally:
            gauge.dec()
            if admission is not None:
                admission.leave()
