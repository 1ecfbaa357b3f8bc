"""A fake Langfuse: the OTLP/HTTP traces endpoint plus the scores API, on loopback.

Tracing must never hurt the gateway, so tests need a Langfuse that can fail in every way that matters
(errors, throttling, slowness, a request that never returns, the whole server vanishing and coming back on
the same port) while recording exactly which spans were accepted. Spans are only counted when the receiver
answered 200, so "was this delivered exactly once" is a question ``spans()`` can answer.

Modes (``set_mode``): "ok", "500", "503", "429" (with ``Retry-After: 1``), "slow" (sleep, then ok),
"hang" (never answer; the handler ends when the client disconnects). The mode applies to traces and
scores alike, since a real outage would hit both.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import gzip
import itertools
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from .serving import LOOPBACK, RunningServer, run_aiohttp_in_thread

TRACES_PATH = "/api/public/otel/v1/traces"
SCORES_PATH = "/api/public/scores"
HEALTH_PATH = "/api/public/health"
MODES = ("ok", "500", "503", "429", "slow", "hang")


def any_value(value: AnyValue) -> Any:
    """OTLP AnyValue -> plain Python (arrays become lists, kvlists dicts)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind)


def attributes(kvs: Any) -> dict[str, Any]:
    items: list[KeyValue] = list(kvs)
    return {kv.key: any_value(kv.value) for kv in items}


def flatten_spans(message: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    """One dict per span, with ids as lowercase hex and resource/scope folded in for easy filtering."""
    out = []
    for resource_spans in message.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                out.append(
                    {
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex() or None,
                        "name": span.name,
                        "kind": span.kind,
                        "start_ns": span.start_time_unix_nano,
                        "end_ns": span.end_time_unix_nano,
                        "attributes": attributes(span.attributes),
                        "events": [
                            {"name": e.name, "time_ns": e.time_unix_nano, "attributes": attributes(e.attributes)}
                            for e in span.events
                        ],
                        "status_code": span.status.code,
                        "status_message": span.status.message,
                        "resource": resource,
                        "scope": scope_spans.scope.name,
                    }
                )
    return out


@dataclass
class ReceivedExport:
    """One POST to the traces endpoint.

    ``message`` is None when the body could not be decoded; ``status`` is what we answered, 0 while the
    answer is still pending or if the client gave up first (slow/hang modes).
    """

    headers: dict[str, str]
    raw_body: bytes
    gzipped: bool
    message: ExportTraceServiceRequest | None
    status: int
    received_at: float


def _basic_auth(header: str | None) -> tuple[str, str] | None:
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, sep, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


class OtlpReceiver:
    """Restartable fake Langfuse; state (recordings, mode) survives stop()/start() so outages can be staged."""

    def __init__(
        self,
        *,
        credentials: tuple[str, str] | None = None,
        slow_seconds: float = 2.0,
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,  # HTTPS, as Langfuse Cloud serves
    ) -> None:
        self.credentials = credentials  # None: any Basic auth is accepted (traces accept no auth too)
        self.slow_seconds = slow_seconds
        self._port = port
        self._ssl = ssl_context
        self._lock = threading.Lock()
        self._mode = "ok"
        self._mode_times: int | None = None
        self._exports: list[ReceivedExport] = []
        self._scores: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._server: RunningServer | None = None

    # ------------------------------------------------------------------------------------------ lifecycle

    def start(self, port: int | None = None) -> OtlpReceiver:
        """Serve on `port`, else on the previous port (restart), else on a free one."""
        if self._server is not None:
            raise RuntimeError("receiver already running; stop() it first")
        chosen = self._port if port is None else port
        self._server = run_aiohttp_in_thread(self.make_app(), port=chosen, ssl_context=self._ssl, auto_decompress=False)
        self._port = self._server.port
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("receiver has no port yet; start() it or pass port=")
        return self._port

    @property
    def url(self) -> str:
        """What the gateway should use as the Langfuse host."""
        return f"{'https' if self._ssl else 'http'}://{LOOPBACK}:{self.port}"

    @property
    def traces_url(self) -> str:
        return self.url + TRACES_PATH

    def __enter__(self) -> OtlpReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(TRACES_PATH, self._traces)
        app.router.add_post(SCORES_PATH, self._score)
        app.router.add_get(HEALTH_PATH, self._health)
        return app

    # ------------------------------------------------------------------------------------- test-side API

    def set_mode(self, mode: str, *, seconds: float | None = None, times: int | None = None) -> None:
        """Switch behaviour; seconds sets the "slow" delay, times=N reverts to "ok" after N requests."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
        with self._lock:
            self._mode, self._mode_times = mode, times
            if seconds is not None:
                self.slow_seconds = seconds

    @property
    def mode(self) -> str:
        with self._lock:
            return self._mode

    @property
    def requests(self) -> list[ReceivedExport]:
        """Every traces POST received, including ones answered with an error."""
        with self._lock:
            return list(self._exports)

    @property
    def scores(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._scores)

    def spans(self) -> list[dict[str, Any]]:
        """Spans from accepted (200) exports only, in arrival order."""
        accepted = [e.message for e in self.requests if e.status == 200 and e.message is not None]
        return [span for message in accepted for span in flatten_spans(message)]

    def spans_for_trace(self, trace_id: str | bytes | int) -> list[dict[str, Any]]:
        if isinstance(trace_id, bytes):
            wanted = trace_id.hex()
        elif isinstance(trace_id, int):
            wanted = f"{trace_id:032x}"
        else:
            wanted = trace_id.lower().replace("-", "")
        return [s for s in self.spans() if s["trace_id"] == wanted]

    def wait_for_spans(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(spans := self.spans()) < n:
            if time.monotonic() > deadline:
                names = [s["name"] for s in spans]
                raise AssertionError(f"expected >= {n} spans within {timeout}s, got {len(spans)}: {names}")
            time.sleep(0.02)
        return spans

    def wait_for_scores(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(scores := self.scores) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected >= {n} scores within {timeout}s, got {len(scores)}")
            time.sleep(0.02)
        return scores

    def reset(self) -> None:
        with self._lock:
            self._exports.clear()
            self._scores.clear()
            self._mode, self._mode_times = "ok", None

    # -------------------------------------------------------------------------------------------- handlers

    def _take_mode(self) -> str:
        with self._lock:
            mode = self._mode
            if self._mode_times is not None:
                self._mode_times -= 1
                if self._mode_times <= 0:
                    self._mode, self._mode_times = "ok", None
            return mode

    def _authorized(self, request: web.Request, required: bool) -> bool:
        creds = _basic_auth(request.headers.get("Authorization"))
        if creds is None:
            return not required and self.credentials is None
        return self.credentials is None or creds == self.credentials

    async def _misbehave(self, mode: str) -> web.Response | None:
        """Non-None means the request is answered with a failure instead of being accepted."""
        if mode in ("500", "503"):
            return web.Response(status=int(mode), text=f"fake langfuse says {mode}")
        if mode == "429":
            return web.Response(status=429, text="fake langfuse says 429", headers={"Retry-After": "1"})
        if mode == "slow":
            await asyncio.sleep(self.slow_seconds)
        elif mode == "hang":
            await asyncio.get_running_loop().create_future()  # cancelled when the client disconnects
        return None

    async def _traces(self, request: web.Request) -> web.Response:
        raw = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        gzipped = headers.get("content-encoding", "").lower() == "gzip"
        # OTLP/JSON is not supported: its hex-encoded ids don't round-trip through protobuf's json_format.
        if headers.get("content-type", "").startswith("application/json"):
            return web.Response(status=415, text="fake langfuse only speaks application/x-protobuf")
        message: ExportTraceServiceRequest | None = None
        with contextlib.suppress(OSError, EOFError, DecodeError):  # bad gzip or bad protobuf -> 400 below
            decoded = ExportTraceServiceRequest()
            decoded.ParseFromString(gzip.decompress(raw) if gzipped else raw)
            message = decoded
        export = ReceivedExport(headers, raw, gzipped, message, 0, time.time())
        with self._lock:
            self._exports.append(export)
        if not self._authorized(request, required=False):
            export.status = 401
            return web.Response(status=401, text="fake langfuse: bad credentials")
        if message is None:
            export.status = 400
            return web.Response(status=400, text="fake langfuse: undecodable OTLP body")
        failure = await self._misbehave(self._take_mode())
        if failure is not None:
            export.status = failure.status
            return failure
        export.status = 200  # set only now, so spans from a slow answer the client abandoned don't count
        payload = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=payload, content_type="application/x-protobuf")

    async def _score(self, request: web.Request) -> web.Response:
        if not self._authorized(request, required=True):
            return web.json_response({"message": "Unauthorized"}, status=401)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"message": "invalid JSON"}, status=400)
        failure = await self._misbehave(self._take_mode())
        if failure is not None:
            return failure
        if not isinstance(body, dict):
            return web.json_response({"message": "expected a JSON object"}, status=400)
        score_id = str(body.get("id") or f"score_fake_{next(self._ids)}")
        with self._lock:
            self._scores.append(body)
        return web.json_response({"id": score_id})

    @staticmethod
    async def _health(request: web.Request) -> web.Response:
        return web.json_response({"status": "OK", "version": "fake"})


def start_otlp_receiver(*, credentials: tuple[str, str] | None = None, port: int = 0) -> OtlpReceiver:
    return OtlpReceiver(credentials=credentials, port=port).start()
