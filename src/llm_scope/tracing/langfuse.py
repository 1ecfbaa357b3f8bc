"""Langfuse sink: the only module that speaks OTLP/protobuf and Langfuse's HTTP API.

Langfuse Cloud no longer takes the legacy batch ingestion API, so calls go in as OTLP/HTTP. We encode the
protobuf ourselves instead of running the OpenTelemetry SDK: a CallRecord is a finished fact pulled from a
durable outbox, not a live operation to instrument, and the SDK's own exporter drops data on 500s and full
queues. Attribute names and encodings mirror what the official Langfuse Python SDK (5.x) sends, because
that is the shape Langfuse's `OtelIngestionProcessor` maps best (see /work/shared/langfuse/).

Each record becomes two spans, like the SDK's "proxy-request" / "llm-call" pair: a root span named after the
route and a child generation that carries model, usage, cost and content. Span ids derive from the trace id,
so a retried export rewrites the same observations instead of duplicating them; that is what lets the
outbox retry whole batches after partial failures.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Any, Final

import aiohttp
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from llm_scope.types import CallRecord

_log = logging.getLogger(__name__)

OTLP_TRACES_PATH: Final = "/api/public/otel/v1/traces"
SCORES_PATH: Final = "/api/public/scores"
SDK_NAME: Final = "llm-scope"
# Langfuse rejects values above 4, and routes lower ones through its older dual-write path.
INGESTION_VERSION: Final = "4"
# Generations are named after the provider (the model has its own field); this when none was chosen.
FALLBACK_GENERATION_NAME: Final = "llm-call"
# Uncompressed bytes per POST: Langfuse refuses bodies of a few MB, and a 413 would never go away.
MAX_REQUEST_BYTES: Final = 3_000_000
# Langfuse drops events whose environment does not match this, so we refuse it at start-up instead.
_ENVIRONMENT_RE: Final = re.compile(r"^(?!langfuse)[a-z0-9_-]{1,40}$")
# SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK with is_remote unset: "parent is local", as the SDK sends.
_FLAGS_PARENT_LOCAL: Final = 0x100

AttrValue = str | bool | int | float | list[str]


def validate_environment(environment: str) -> str:
    """Return `environment` if Langfuse will accept it; otherwise every event would be dropped silently."""
    if not _ENVIRONMENT_RE.match(environment):
        raise ValueError(
            f"invalid Langfuse environment {environment!r}: use 1-40 of [a-z0-9_-], not starting 'langfuse'"
        )
    return environment


def build_export_request(
    records: Sequence[CallRecord], *, environment: str, release: str, service_name: str = SDK_NAME
) -> bytes:
    """Serialize `records` as one OTLP request; the same records always give the same bytes."""
    request, spans = _new_request(release=release, service_name=service_name)
    for record in records:
        _add_record_spans(spans, record, environment, release)
    data: bytes = request.SerializeToString()
    return data


def _new_request(*, release: str, service_name: str) -> tuple[ExportTraceServiceRequest, Any]:
    """An empty request and its span list. Spans are built in place: constructing Span objects and
    copying them in costs 2.5x as much CPU (measured), and export runs for every call."""
    resource: dict[str, AttrValue] = {
        "service.name": service_name,
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": SDK_NAME,
    }
    if release:
        resource["service.version"] = release  # Langfuse also uses it as the observation `version`
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    _fill(resource_spans.resource.attributes, resource)
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = SDK_NAME
    scope_spans.scope.version = release
    return request, scope_spans.spans


def _add_record_spans(spans: Any, record: CallRecord, environment: str, release: str) -> None:
    """Append the record's root span and generation to `spans` (a repeated Span field)."""
    trace_id = _trace_id(record.trace_id)
    root_id = _span_id(trace_id, "root")
    start, end = record.start_time, max(record.end_time, record.start_time)  # end_time 0.0 means unset
    # Langfuse v4 reads user, session, tags and trace name off each span it stores, so all spans carry them.
    shared = _trace_attributes(record, environment, release)
    root_attrs: dict[str, AttrValue] = {
        "langfuse.internal.is_app_root": True,
        "langfuse.observation.type": "span",
        **shared,
    }
    for key, value in record.metadata.items():
        if (encoded := _metadata_value(value)) is not None:
            root_attrs[f"langfuse.trace.metadata.{key}"] = encoded

    # The generation covers the upstream call only, so the root's extra length is the gateway's overhead.
    generation_start = start
    if record.upstream_latency is not None:
        latest = record.completion_start_time if record.completion_start_time is not None else end
        generation_start = min(max(start, end - record.upstream_latency), max(start, latest))

    for span_id, parent, name, begin, attrs in (
        (root_id, b"", record.route, start, root_attrs),
        (
            _span_id(trace_id, "generation"),
            root_id,
            record.provider or FALLBACK_GENERATION_NAME,
            generation_start,
            {**shared, **_generation_attributes(record)},
        ),
    ):
        span = spans.add()
        span.trace_id = trace_id
        span.span_id = span_id
        if parent:
            span.parent_span_id = parent
        span.name = _utf8(name)
        span.kind = Span.SpanKind.SPAN_KIND_INTERNAL
        span.start_time_unix_nano = _nanos(begin)
        span.end_time_unix_nano = _nanos(end)
        span.flags = _FLAGS_PARENT_LOCAL
        if record.is_error:
            span.status.code = Status.StatusCode.STATUS_CODE_ERROR
            span.status.message = _status_message(record)
        else:
            span.status.SetInParent()
        _fill(span.attributes, attrs)


def _trace_attributes(record: CallRecord, environment: str, release: str) -> dict[str, AttrValue]:
    attrs: dict[str, AttrValue] = {}
    if record.user_id:
        attrs["user.id"] = record.user_id
    if record.session_id:
        attrs["session.id"] = record.session_id
    tags = list(dict.fromkeys(t for t in (record.provider, record.resolved_model, record.route) if t))
    if tags:
        attrs["langfuse.trace.tags"] = tags
    attrs["langfuse.trace.name"] = record.route
    attrs["langfuse.environment"] = environment
    if release:
        attrs["langfuse.release"] = release
    return attrs


def _generation_attributes(record: CallRecord) -> dict[str, AttrValue]:
    attrs: dict[str, AttrValue] = {"langfuse.observation.type": "generation"}
    if model := record.resolved_model or record.requested_model:
        attrs["langfuse.observation.model.name"] = model
    if record.model_parameters:
        attrs["langfuse.observation.model.parameters"] = _json(record.model_parameters)
    if record.input is not None:
        attrs["langfuse.observation.input"] = _json(record.input)
    if record.output is not None:
        attrs["langfuse.observation.output"] = _json(record.output)
    # Usage we send overrides Langfuse's own tokenizer-based inference. All zeros on a success means "not
    # reported", so let Langfuse infer; on a failure the zeros are true and stop it billing the prompt.
    usage = record.usage.details()
    if any(usage.values()) or record.is_error:
        attrs["langfuse.observation.usage_details"] = _json(usage)
    if record.cost is not None:
        attrs["langfuse.observation.cost_details"] = _json(record.cost.details())
    if record.completion_start_time is not None:
        attrs["langfuse.observation.completion_start_time"] = json.dumps(_iso(record.completion_start_time))
    if record.is_error:
        attrs["langfuse.observation.level"] = "ERROR"
        attrs["langfuse.observation.status_message"] = _status_message(record)

    metadata: dict[str, Any] = {
        **record.metadata,  # caller metadata first: the gateway's own facts below win on a name clash
        "requested_model": record.requested_model,
        "provider": record.provider,
        "status_code": record.status_code,
        "stream": record.stream,
        "client": record.client,
        "finish_reason": record.finish_reason,
        "error_type": record.error_type,
        "upstream_latency": record.upstream_latency,
    }
    for key, value in metadata.items():
        if (encoded := _metadata_value(value)) is not None and encoded != "":
            attrs[f"langfuse.observation.metadata.{key}"] = encoded
    return attrs


def _status_message(record: CallRecord) -> str:
    return record.error_message or record.error_type or f"HTTP {record.status_code}"


def _trace_id(raw: str) -> bytes:
    """The record's id if valid for OTLP, else a stable stand-in: one bad id must not wedge a batch."""
    try:
        trace_id = bytes.fromhex(raw)
    except ValueError:
        trace_id = b""
    if len(trace_id) == 16 and any(trace_id):
        return trace_id
    return _nonzero(hashlib.sha256(f"llm-scope-trace:{raw}".encode()).digest()[:16])


def _span_id(trace_id: bytes, role: str) -> bytes:
    return _nonzero(hashlib.sha256(f"{trace_id.hex()}:{role}".encode()).digest()[:8])


def _nonzero(ident: bytes) -> bytes:
    # OTLP treats an all-zero id as invalid; sha256 makes this practically unreachable, but cheap to hold.
    return ident if any(ident) else ident[:-1] + b"\x01"


def _nanos(ts: float) -> int:
    return max(0, round(ts * 1_000_000_000))


def _iso(ts: float) -> str:
    # Always microseconds and "Z", as the SDK writes it; Langfuse parses exactly this.
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json(value: Any) -> str:
    # Strings go through unquoted, as the SDK does, so a plain-text prompt doesn't show up as "\"...\"".
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _metadata_value(value: Any) -> AttrValue | None:
    # Scalars stay typed (Langfuse keeps numbers as numbers in metadata); anything else goes as JSON.
    if value is None or isinstance(value, str | bool | float):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else str(value)  # protobuf raises outside int64
    return json.dumps(value, ensure_ascii=False, default=str)


def _fill(attributes: Any, attrs: Mapping[str, AttrValue]) -> None:
    """Append `attrs` to a repeated KeyValue field, in place."""
    for key, value in attrs.items():
        kv = attributes.add()
        kv.key = _utf8(key)
        target = kv.value
        if isinstance(value, str):
            target.string_value = _utf8(value)
        elif isinstance(value, bool):  # before int: bool is an int
            target.bool_value = value
        elif isinstance(value, int):
            target.int_value = value
        elif isinstance(value, float):
            target.double_value = value
        else:
            for item in value:
                target.array_value.values.add().string_value = _utf8(item)


def _utf8(text: str) -> str:
    # Lone surrogates (a client's JSON may hold "\ud800") are not UTF-8, and protobuf raises on them.
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


def basic_auth(public_key: str, secret_key: str) -> str:
    """The full `Authorization` header value Langfuse expects: Basic base64(public:secret)."""
    token = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode("ascii")
    return f"Basic {token}"


def otlp_headers(public_key: str, secret_key: str, release: str) -> dict[str, str]:
    """Headers for a gzip'd OTLP/protobuf POST; x-langfuse-* name us in Langfuse's ingestion stats."""
    return {
        "Authorization": basic_auth(public_key, secret_key),
        "Content-Type": "application/x-protobuf",
        "Content-Encoding": "gzip",
        "x-langfuse-ingestion-version": INGESTION_VERSION,
        "x-langfuse-public-key": public_key,
        "x-langfuse-sdk-name": SDK_NAME,
        "x-langfuse-sdk-version": release,
    }


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None when absent or junk."""
    if not value:
        return None
    if value.strip().isdecimal():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class ExportStatus(Enum):
    OK = "ok"
    RETRYABLE = "retryable"  # Langfuse or the network is having a bad moment: keep it and try again
    REJECTED = "rejected"  # Langfuse refused it; the same bytes will be refused again (401 may be config)


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What happened to one export; the caller owns retry and backoff, so nothing here raises."""

    status: ExportStatus
    http_status: int | None = None  # None when no response came back
    retry_after: float | None = None  # seconds, from Retry-After
    detail: str = ""  # for logs; never contains the secret key

    @property
    def ok(self) -> bool:
        return self.status is ExportStatus.OK


def _classify(http_status: int) -> ExportStatus:
    if 200 <= http_status < 300:
        return ExportStatus.OK
    if http_status in (408, 429) or http_status >= 500:
        return ExportStatus.RETRYABLE
    return ExportStatus.REJECTED  # other 4xx, and 1xx/3xx: we never follow redirects with credentials


class LangfuseExporter:
    """Delivers CallRecords (and scores) to one Langfuse project; one pooled HTTP session, made lazily."""

    def __init__(
        self,
        *,
        host: str,
        public_key: str,
        secret_key: str,
        environment: str,
        release: str,
        timeout: float = 10.0,
        max_request_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        if not host.startswith(("http://", "https://")):
            raise ValueError(f"Langfuse host must be an http(s) URL, got {host!r}")
        self._host = host.rstrip("/")
        self._environment = validate_environment(environment)
        self._release = release
        self._timeout = timeout
        self._max_request_bytes = max_request_bytes
        self._otlp_headers = otlp_headers(public_key, secret_key, release)
        self._score_headers = {
            "Authorization": basic_auth(public_key, secret_key),
            "Content-Type": "application/json",
            "x-langfuse-sdk-name": SDK_NAME,
            "x-langfuse-sdk-version": release,
        }
        self._secret_key = secret_key  # kept only to scrub it from anything we log or return
        self._session: aiohttp.ClientSession | None = None

    async def export(self, records: Sequence[CallRecord]) -> ExportResult:
        """POST the records, stopping at the first failed chunk; retrying all is safe: span ids are stable."""
        if not records:
            return ExportResult(ExportStatus.OK)
        # Protobuf encoding and gzip of a big batch take milliseconds of CPU; keep them off the event loop
        # that is streaming responses to clients.
        bodies = await asyncio.to_thread(self._encode, records)
        result = ExportResult(ExportStatus.OK)
        for body in bodies:
            result = await self._post(OTLP_TRACES_PATH, body, self._otlp_headers)
            if not result.ok:
                break
        return result

    async def send_score(self, score: Mapping[str, Any]) -> ExportResult:
        """POST one score (traceId, name, value, dataType, comment, id); an `id` makes retries idempotent."""
        body = json.dumps(score, ensure_ascii=False, default=str).encode()
        return await self._post(SCORES_PATH, body, self._score_headers)

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _encode(self, records: Sequence[CallRecord]) -> list[bytes]:
        """Gzipped requests of at most `max_request_bytes` each; a record's two spans stay together."""
        bodies: list[bytes] = []
        request, spans = _new_request(release=self._release, service_name=SDK_NAME)
        size = 0
        for record in records:
            before = len(spans)
            try:
                _add_record_spans(spans, record, self._environment, self._release)
            except Exception:  # it would fail the same way on every retry: don't let it hold up the rest
                del spans[before:]
                _log.exception("langfuse: dropping unencodable record, trace %s", record.trace_id)
                continue
            added = sum(span.ByteSize() for span in spans[before:])
            if before and size + added > self._max_request_bytes:
                del spans[before:]
                bodies.append(self._compress(request))
                request, spans = _new_request(release=self._release, service_name=SDK_NAME)
                _add_record_spans(spans, record, self._environment, self._release)
                size = 0
            size += added
        if len(spans):
            bodies.append(self._compress(request))
        return bodies

    @staticmethod
    def _compress(request: ExportTraceServiceRequest) -> bytes:
        return gzip.compress(request.SerializeToString(), compresslevel=6, mtime=0)

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use because a ClientSession binds to the running loop, which __init__ may lack.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        return self._session

    async def _post(self, path: str, body: bytes, headers: Mapping[str, str]) -> ExportResult:
        url = self._host + path
        try:
            async with self._client().post(url, data=body, headers=headers, allow_redirects=False) as resp:
                text = await resp.text(errors="replace")  # read fully so the connection goes back to the pool
                http_status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            detail = self._scrub(f"{type(exc).__name__}: {exc}")
            _log.warning("langfuse: POST %s failed, will retry: %s", url, detail)
            return ExportResult(ExportStatus.RETRYABLE, detail=detail)

        status = _classify(http_status)
        if status is ExportStatus.OK:
            return ExportResult(status, http_status=http_status)
        detail = self._scrub(text[:500])
        if status is ExportStatus.RETRYABLE:
            _log.warning("langfuse: POST %s -> HTTP %d, will retry: %s", url, http_status, detail)
        else:
            hint = " (check the Langfuse keys and host)" if http_status in (401, 403) else ""
            _log.error("langfuse: POST %s -> HTTP %d, rejected%s: %s", url, http_status, hint, detail)
        return ExportResult(status, http_status=http_status, retry_after=retry_after, detail=detail)

    def _scrub(self, text: str) -> str:
        # Belt and braces: a proxy or error page could echo what we sent.
        if not self._secret_key:
            return text
        for secret in (self._secret_key, self._otlp_headers["Authorization"].removeprefix("Basic ")):
            text = text.replace(secret, "***")
        return text
