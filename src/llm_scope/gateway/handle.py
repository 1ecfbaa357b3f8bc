"""One call, top to bottom: resolve the model, call the provider, tap the answer, record the call.

Knows the Provider and Recorder seams, never the web framework or a provider SDK.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ..accounting.redact import redact_value
from ..errors import GatewayError
from ..providers import provider_kind
from ..providers.base import CallOptions, Provider, UpstreamResponse
from ..types import CallRecord, Deployment, Recorder
from .routing import Router
from .streaming import ChatStreamTap, Summary, summarize_json

log = logging.getLogger("llm_scope.gateway")

MODEL_PARAMETERS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "n",
    "reasoning_effort",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "logprobs",
    "top_logprobs",
    "service_tier",
)


@dataclass
class Result:
    """What the HTTP layer sends: a whole body, or a stream; `finish` runs once the client has it."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    finish: Callable[[], None] | None = None


@dataclass
class CallContext:
    trace_id: str
    route: str
    start_time: float = field(default_factory=time.time)
    user_id: str | None = None
    session_id: str | None = None
    client: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def new_record(self, body: dict[str, Any] | None) -> CallRecord:
        body = body or {}
        return CallRecord(
            trace_id=self.trace_id,
            route=self.route,
            start_time=self.start_time,
            user_id=self.user_id or (body.get("user") if isinstance(body.get("user"), str) else None),
            session_id=self.session_id,
            client=self.client,
            metadata=self.metadata,
            requested_model=str(body.get("model") or ""),
            stream=bool(body.get("stream")),
            model_parameters={k: body[k] for k in MODEL_PARAMETERS if k in body},
            input=_input_of(body) if body else None,
        )


class Gateway:
    def __init__(
        self,
        router: Router,
        providers: dict[str, Provider],
        recorder: Recorder,
        *,
        timeout: float,
        connect_timeout: float,
        secrets: list[str] | None = None,
        debug: bool = False,
    ) -> None:
        self.router = router
        self.providers = providers
        self.recorder = recorder
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.secrets = secrets or []
        self.debug = debug

    async def aclose(self) -> None:
        await asyncio.gather(*(p.aclose() for p in self.providers.values()), return_exceptions=True)

    def record_failure(self, ctx: CallContext, body: dict[str, Any] | None, exc: GatewayError) -> None:
        """Calls rejected before reaching a provider (bad JSON, unknown model) are traced too."""
        record = ctx.new_record(body)
        _fail(record, exc)
        record.end_time = time.time()
        self.recorder.submit(record)

    async def chat(self, ctx: CallContext, body: dict[str, Any]) -> Result:
        record = ctx.new_record(body)
        if self.debug:
            log.debug("request %s: %s", ctx.trace_id, json.dumps(redact_value(body, self.secrets)))
        try:
            deployment = self.router.resolve(record.requested_model)[0]
            record.resolved_model, record.provider = deployment.model, deployment.provider
            upstream_body, strip_usage = _upstream_body(body)
            sent = time.perf_counter()
            upstream = await self._provider(deployment).chat(deployment, upstream_body, self._options(deployment))
        except GatewayError as exc:
            _fail(record, exc)
            record.end_time = time.time()
            self.recorder.submit(record)
            raise
        if upstream.chunks is None:

            def finish() -> None:
                record.upstream_latency = time.perf_counter() - sent
                self._finish(record, summarize_json(upstream.body))

            return Result(status=upstream.status, headers=upstream.headers, body=upstream.body, finish=finish)
        tap = ChatStreamTap(strip_usage=strip_usage)
        return Result(status=upstream.status, headers=upstream.headers, stream=self._relay(record, upstream, tap, sent))

    def _provider(self, deployment: Deployment) -> Provider:
        return self.providers[provider_kind(deployment.provider)]

    def _options(self, deployment: Deployment) -> CallOptions:
        return CallOptions(timeout=deployment.timeout or self.timeout, connect_timeout=self.connect_timeout)

    async def _relay(
        self, record: CallRecord, upstream: UpstreamResponse, tap: ChatStreamTap, sent: float
    ) -> AsyncIterator[bytes]:
        """Forward chunks as they arrive; an error after the first byte becomes an SSE error event."""
        assert upstream.chunks is not None
        try:
            async for chunk in upstream.chunks:
                out = tap.feed(chunk)
                if out:
                    yield out
            tail = tap.flush()
            if tail:
                yield tail
        except GatewayError as exc:
            _fail(record, exc)
            yield b"data: " + json.dumps(exc.openai_body()).encode() + b"\n\n"
        except (asyncio.CancelledError, GeneratorExit):
            record.status_code, record.error_type = 499, "client_disconnected"
            record.error_message = "client disconnected before the stream ended"
            raise
        finally:
            await upstream.aclose()
            record.upstream_latency = time.perf_counter() - sent
            record.completion_start_time = tap.first_chunk_at
            self._finish(record, tap.summary())

    def _finish(self, record: CallRecord, summary: Summary) -> None:
        record.end_time = time.time()
        record.output = summary.output
        record.usage = summary.usage
        record.finish_reason = summary.finish_reason
        if summary.error and record.error_type is None:
            record.error_type, record.error_message = "upstream_error", summary.error
        if self.debug:
            log.debug(
                "response %s (HTTP %d): %s",
                record.trace_id,
                record.status_code,
                json.dumps(redact_value(summary.output, self.secrets)),
            )
        self.recorder.submit(record)


def _fail(record: CallRecord, exc: GatewayError) -> None:
    record.status_code = exc.status
    record.error_type = exc.code or exc.type
    record.error_message = exc.message


def _upstream_body(body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The body as the upstream should get it, and whether the gateway added usage to a stream.

    `metadata` is the gateway's (trace metadata) unless the client asked OpenAI to store the completion,
    because OpenAI rejects `metadata` without `store`.
    """
    out = body if "metadata" not in body or body.get("store") else {k: v for k, v in body.items() if k != "metadata"}
    if not body.get("stream"):
        return out, False
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        return out, False
    out = dict(out)
    out["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return out, True


def _input_of(body: dict[str, Any]) -> Any:
    messages = body.get("messages")
    if body.get("tools"):
        return {"messages": messages, "tools": body["tools"]}
    return messages
