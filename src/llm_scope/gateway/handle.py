"""One call, top to bottom: resolve the model, call the provider, tap the answer, record the call.

Knows the Provider and Recorder seams, never the web framework or a provider SDK.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..accounting.redact import redact_text, redact_value
from ..apis import ApiFamily, Summary, Tap
from ..errors import DeploymentUnavailable, GatewayError
from ..model_config import RetryPolicy
from ..providers import provider_kind
from ..providers.base import CallOptions, Provider, Received, UpstreamResponse
from ..providers.passthrough import PassthroughProvider
from ..providers.upstream_body import SPLICE_FROM
from ..types import CallRecord, Deployment, RawInput, Recorder
from .resilience import Balancer, Cooldowns, is_retryable
from .routing import Router

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
    "top_k",
    "thinking",
    "max_output_tokens",
    "stop_sequences",
    "reasoning",
    "truncation",
    "dimensions",
    "encoding_format",
)

_PARAMETER_SET = frozenset(MODEL_PARAMETERS)  # a body has a handful of keys: walk those, not this list


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
    key_id: str | None = None
    client_version: str | None = None
    subagent: str | None = None
    body_bytes: bytes | None = None  # the request body as received, when large enough to hand over raw
    received: bytes | None = None  # the request body as received, for a passthrough to send as it came

    def new_record(self, body: dict[str, Any] | None, family: ApiFamily) -> CallRecord:
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
            model_parameters={k: v for k, v in body.items() if k in _PARAMETER_SET},
            input=(family.input_of(body) if self.body_bytes is None else RawInput(self.body_bytes, family.name))
            if body
            else None,
            key_id=self.key_id,
            client_version=self.client_version,
            subagent=self.subagent,
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
        policy: RetryPolicy | None = None,
        on_upstream_failure: Callable[[Deployment, GatewayError], None] | None = None,
    ) -> None:
        self.router = router
        self.policy = policy or RetryPolicy()
        self.cooldowns = Cooldowns(self.policy)
        strategy = self.policy.routing_strategy
        self.balancer = Balancer(strategy) if strategy != "simple-shuffle" else None
        self.on_upstream_failure = on_upstream_failure
        self.providers = providers
        self.recorder = recorder
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.secrets = secrets or []
        self.debug = debug
        self._plain_options: dict[float, CallOptions] = {}

    async def aclose(self) -> None:
        await asyncio.gather(*(p.aclose() for p in self.providers.values()), return_exceptions=True)

    def record_failure(
        self, ctx: CallContext, body: dict[str, Any] | None, exc: GatewayError, family: ApiFamily
    ) -> None:
        """Calls rejected before reaching a provider (bad JSON, unknown model) are traced too."""
        record = ctx.new_record(body, family)
        _fail(record, exc)
        record.end_time = time.time()
        self.recorder.submit(record)

    async def call(
        self, ctx: CallContext, family: ApiFamily, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Result:
        """Serve one call of any API family; `headers` are client headers the upstream must see (anthropic-beta)."""
        record = ctx.new_record(body, family)
        if self.debug:
            log.debug("request %s: %s", ctx.trace_id, json.dumps(redact_value(body, self.secrets)))
        try:
            upstream, sent, strip_usage, deployment = await self._attempt(record, family, body, headers, ctx.received)
        except GatewayError as exc:
            exc.message = redact_text(exc.message, self.secrets)  # an upstream may echo a key back
            _fail(record, exc)
            record.end_time = time.time()
            self.recorder.submit(record)
            raise
        if upstream.chunks is None:
            summarize = family.summarize

            def finish() -> None:
                record.upstream_latency = time.perf_counter() - sent
                if self.balancer is not None:
                    self.balancer.ended(deployment)
                self._finish(record, summarize(upstream.body))

            return Result(status=upstream.status, headers=upstream.headers, body=upstream.body, finish=finish)
        return Result(
            status=upstream.status,
            headers=upstream.headers,
            stream=self._relay(family, record, upstream, family.tap(strip_usage), sent, deployment),
        )

    def _plan(self, name: str) -> tuple[list[Deployment], int]:
        """Deployments to try, in order: the name's own (healthy first), then each fallback name's;
        and how many of them are the name's own."""
        own_deployments = self.router.resolve(name)
        plan = self._order(own_deployments)
        own = len(plan)
        for fallback in self.policy.fallbacks_for(name):
            plan += self._order(self.router.candidates(fallback))
        if not plan:  # every deployment is unavailable as configured, fallbacks too
            raise DeploymentUnavailable(own_deployments[0].unavailable or f"model '{name}' is unavailable")
        return plan, own

    def _order(self, candidates: list[Deployment]) -> list[Deployment]:
        """Usable deployments (not unavailable as configured), healthy first, then by the routing strategy."""
        if self.router.has_unavailable:
            candidates = [d for d in candidates if d.unavailable is None]
        ordered = self.cooldowns.order(candidates)
        return self.balancer.order(ordered) if self.balancer is not None else ordered

    async def _attempt(
        self,
        record: CallRecord,
        family: ApiFamily,
        body: dict[str, Any],
        headers: dict[str, str] | None,
        raw: bytes | None = None,
    ) -> tuple[UpstreamResponse, float, bool, Deployment]:
        """Try the plan until an upstream answers; nothing has reached the client yet, so retrying is safe."""
        plan, own = self._plan(record.requested_model)
        upstream_body, strip_usage = family.prepare(body)
        last: GatewayError | None = None
        for attempt in range(max(len(plan), 1 + self.policy.num_retries)):
            deployment = plan[attempt % len(plan)]
            record.resolved_model, record.provider = deployment.model, deployment.provider
            record.server = server_of(deployment.api_base)
            if attempt:
                record.metadata = {**record.metadata, "gateway_attempts": attempt + 1}
                await asyncio.sleep(self.policy.backoff(attempt - 1, last.retry_after if last else None))
            sent = time.perf_counter()
            if self.balancer is not None:
                self.balancer.started(deployment)
            try:
                provider = self.providers[provider_kind(family, deployment.provider)]
                # Only a passthrough sends the client's bytes (`raw`, what `body` parsed from), and only a body
                # long enough to gain from it; the others keep the options shared by every call.
                splice = raw is not None and len(raw) >= SPLICE_FROM and isinstance(provider, PassthroughProvider)
                received = Received(raw, body) if splice and raw is not None else None
                options = self._options(deployment, headers, received)
                upstream = await provider.call(family.name, deployment, upstream_body, options)
            except GatewayError as exc:
                if self.balancer is not None:
                    self.balancer.ended(deployment)
                if not is_retryable(exc):
                    raise
                last = exc
                self.cooldowns.failed(deployment)
                if self.on_upstream_failure is not None:
                    self.on_upstream_failure(deployment, exc)
                continue
            self.cooldowns.succeeded(deployment)
            if self.balancer is not None:
                self.balancer.answered(deployment, time.perf_counter() - sent)
            if attempt % len(plan) >= own:
                record.metadata = {**record.metadata, "fallback_model": deployment.model_name}
            return upstream, sent, strip_usage, deployment
        assert last is not None
        raise last

    def _options(
        self, deployment: Deployment, headers: dict[str, str] | None, received: Received | None = None
    ) -> CallOptions:
        timeout = deployment.timeout or self.timeout
        if headers or received is not None:
            return CallOptions(timeout, self.connect_timeout, headers or {}, received)
        options = self._plain_options.get(timeout)  # immutable: one per timeout serves every call without headers
        if options is None:
            options = self._plain_options[timeout] = CallOptions(timeout=timeout, connect_timeout=self.connect_timeout)
        return options

    async def _relay(
        self,
        family: ApiFamily,
        record: CallRecord,
        upstream: UpstreamResponse,
        tap: Tap,
        sent: float,
        deployment: Deployment,
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
            yield family.stream_error(exc)
        except (asyncio.CancelledError, GeneratorExit):
            # SDKs close the connection as soon as they read the terminal event ([DONE], message_stop,
            # response.completed), often before the upstream's own end of stream reaches us: that is a
            # complete answer, not a disconnect.
            if not tap.ended:
                record.status_code, record.error_type = 499, "client_disconnected"
                record.error_message = "client disconnected before the stream ended"
            raise
        finally:
            await upstream.aclose()
            if self.balancer is not None:
                self.balancer.ended(deployment)
            record.upstream_latency = time.perf_counter() - sent
            record.completion_start_time = tap.first_chunk_at
            # Parsing the whole stream for the trace waits until the client has its last byte.
            asyncio.get_running_loop().call_soon(lambda: self._finish(record, tap.summary()))

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


@functools.lru_cache(maxsize=256)
def server_of(api_base: str | None) -> str | None:
    """The upstream's host[:port] (OTel's server.address), never the rest of its URL, which may hold secrets."""
    if not api_base:
        return None
    try:
        parts = urlsplit(api_base)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname if port is None else f"{parts.hostname}:{port}"
