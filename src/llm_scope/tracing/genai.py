"""CallRecord → a standard OpenTelemetry GenAI span, for any OTLP backend (Tempo, Jaeger, Phoenix, Datadog,
an OTel Collector), beside or instead of Langfuse.

Attribute names follow the OpenTelemetry semantic conventions v1.41.0 (the last release that carried the GenAI
conventions in the main repository), `SEMCONV_VERSION` below; the request says so in its `schema_url`. Usage
follows the conventions' own arithmetic, not Langfuse's: `gen_ai.usage.input_tokens` is the whole prompt and
the cache attributes are parts of it, `gen_ai.usage.output_tokens` the whole completion and reasoning a part
of it. Message content goes out only when the operator opts in (OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_
CONTENT, as the conventions ask), and never when content tracing is off altogether. The trace id is the call's
X-Trace-ID, so a span found in one backend is the same call in the dashboard and in Langfuse.

Written with the same hand-rolled protobuf pieces as the Langfuse encoder (`protowire`); the tests decode it
with the official opentelemetry-proto classes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import unquote

from ..apis import FAMILIES
from ..types import CallRecord
from .exporting import DIRECT, ExportResult, ExportStatus, HttpPoster, Route, gzipped_chunks
from .inputruns import InputRuns
from .otlp import _dumps, _status_message, _times, usage_details
from .protowire import (
    AttrValue,
    attribute,
    export_request,
    key_field,
    length_delimited,
    span_entry,
    span_id_of,
    text,
    trace_id_of,
)
from .splice import Segment, raw_of

SEMCONV_VERSION: Final = "1.41.0"
SCHEMA_URL: Final = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
SCOPE_NAME: Final = "llm_scope"

# gen_ai.operation.name by a record's route: each API family's row says (count_tokens keeps its own name).
OPERATIONS: Final = {family.route: family.genai_operation for family in FAMILIES}
# gen_ai.provider.name's well-known values for LiteLLM's provider prefixes; the rest keep their prefix.
PROVIDERS: Final = {
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "gemini": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "watsonx": "ibm.watsonx.ai",
}
# Request parameters with a gen_ai.request.* attribute of their own, and that attribute's type.
PARAMETERS: Final[dict[str, tuple[str, type]]] = {
    "temperature": ("gen_ai.request.temperature", float),
    "top_p": ("gen_ai.request.top_p", float),
    "top_k": ("gen_ai.request.top_k", int),
    "max_tokens": ("gen_ai.request.max_tokens", int),
    "max_completion_tokens": ("gen_ai.request.max_tokens", int),
    "max_output_tokens": ("gen_ai.request.max_tokens", int),
    "frequency_penalty": ("gen_ai.request.frequency_penalty", float),
    "presence_penalty": ("gen_ai.request.presence_penalty", float),
    "seed": ("gen_ai.request.seed", int),
}
_KEY_INPUT: Final = key_field("gen_ai.input.messages")
_KIND_CLIENT: Final = b"\x30\x03"  # Span.kind = SPAN_KIND_CLIENT: the gateway calls the model


class GenAIEncoder:
    """Encodes records as GenAI spans of one service; `content` says whether prompts and answers go too."""

    def __init__(self, *, service_name: str, version: str, content: bool) -> None:
        resource: dict[str, AttrValue] = {"service.name": service_name, "telemetry.sdk.name": "llm-scope"}
        if version:
            resource["telemetry.sdk.version"] = version
        # Resource.attributes is field 1, where a span's are field 9; the entries are otherwise the same.
        attributes = b"".join(b"\x0a" + attribute(key, value)[1:] for key, value in resource.items())
        scope = length_delimited(b"\x0a", SCOPE_NAME.encode())
        if version:
            scope += length_delimited(b"\x12", text(version))
        self.resource_field = length_delimited(b"\x0a", attributes)
        self.scope_field = length_delimited(b"\x0a", scope) + length_delimited(b"\x1a", SCHEMA_URL.encode())
        self._content = content
        self._inputs = InputRuns(_dumps)  # a coding agent's conversation: encoded and compressed once a block

    def request(self, records: Sequence[CallRecord]) -> bytes:
        """One ExportTraceServiceRequest (raises on a record that cannot be encoded)."""
        return raw_of(self.request_parts([self.record_parts(record) for record in records]))

    def request_parts(self, spans: Sequence[Sequence[Segment]]) -> list[Segment]:
        """An ExportTraceServiceRequest around spans encoded by `record_parts`, as segments."""
        return export_request(self.resource_field, self.scope_field, spans)

    def record(self, record: CallRecord) -> bytes:
        """One ScopeSpans.spans entry."""
        return raw_of(self.record_parts(record))

    def record_parts(self, record: CallRecord) -> list[Segment]:
        """record(), as segments: the input's large parts as the pieces kept for them (`inputruns`)."""
        trace_id = trace_id_of(record.trace_id)
        operation = OPERATIONS.get(record.route, record.route or "chat")
        model = record.requested_model or record.resolved_model
        name = f"{operation} {model}" if model else operation
        attrs: list[Segment] = [attribute("gen_ai.operation.name", operation)]
        if record.provider:
            attrs.append(attribute("gen_ai.provider.name", PROVIDERS.get(record.provider, record.provider)))
        if record.requested_model:
            attrs.append(attribute("gen_ai.request.model", record.requested_model))
        if record.resolved_model:
            attrs.append(attribute("gen_ai.response.model", record.resolved_model))
        attrs += _parameters(record.model_parameters)
        if record.finish_reason:
            attrs.append(attribute("gen_ai.response.finish_reasons", [str(record.finish_reason)]))
        attrs += _usage(record)
        if record.session_id:
            attrs.append(attribute("gen_ai.conversation.id", record.session_id))
        if record.user_id:
            attrs.append(attribute("user.id", record.user_id))
        attrs += _server(record.server)
        if record.cost is not None and math.isfinite(record.cost.total):
            attrs.append(attribute("llm_scope.cost.usd", record.cost.total))
        attrs.append(attribute("llm_scope.route", record.route))
        if record.client:
            attrs.append(attribute("llm_scope.client", record.client))
        if self._content:
            if record.input is not None:
                content = self._inputs.attribute(_KEY_INPUT, record.input)
                attrs += [content] if isinstance(content, bytes) else content
            if record.output is not None:
                attrs.append(attribute("gen_ai.output.messages", _content(record.output)))
        if record.is_error:
            attrs.append(attribute("error.type", record.error_type or str(record.status_code)))
            message = text(_status_message(record))
            status = length_delimited(b"\x12", message) + b"\x18\x02"  # Status{message, code ERROR}
            tail = length_delimited(b"\x7a", status)
        else:
            tail = b""
        return span_entry(
            (
                length_delimited(b"\x0a", trace_id),
                length_delimited(b"\x12", span_id_of(trace_id.hex().encode() + b":genai")),
                length_delimited(b"\x2a", text(name)),
                _KIND_CLIENT,
                _times(record.start_time, max(record.end_time, record.start_time)),
                *attrs,
                tail,
            )
        )


def _parameters(parameters: dict[str, Any]) -> list[bytes]:
    out: dict[str, AttrValue] = {}
    for key, value in parameters.items():
        known = PARAMETERS.get(key)
        if known is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        name, kind = known
        if kind is int and isinstance(value, int) and -(2**63) <= value < 2**63:
            out[name] = value
        elif kind is float and math.isfinite(value):
            out[name] = float(value)
    stop = parameters.get("stop") or parameters.get("stop_sequences")
    if isinstance(stop, str):
        out["gen_ai.request.stop_sequences"] = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        out["gen_ai.request.stop_sequences"] = stop
    return [attribute(key, value) for key, value in out.items()]


def _usage(record: CallRecord) -> list[bytes]:
    """The conventions' usage: parts inside wholes. Unknown usage (see `usage_details`) is left out."""
    details = usage_details(record)
    if details is None:
        return []
    usage = record.usage
    out = [attribute("gen_ai.usage.input_tokens", usage.input)]
    if "output" in details:  # a stream cut off before its output was counted: output unknown
        out.append(attribute("gen_ai.usage.output_tokens", usage.output))
    if usage.cache_read:
        out.append(attribute("gen_ai.usage.cache_read.input_tokens", usage.cache_read))
    if usage.cache_write:
        out.append(attribute("gen_ai.usage.cache_creation.input_tokens", usage.cache_write))
    if usage.reasoning:
        out.append(attribute("gen_ai.usage.reasoning.output_tokens", usage.reasoning))
    return out


def _server(server: str | None) -> list[bytes]:
    if not server:
        return []
    host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
    if port.isdigit():
        return [attribute("server.address", host), attribute("server.port", int(port))]
    return [attribute("server.address", server)]


def _content(value: Any) -> str:
    # As the API carried them (OpenAI, Anthropic or Responses shape), as JSON; plain text stays as it is.
    return value if isinstance(value, str) else _dumps(value)


def service_url(endpoint: str, traces_endpoint: str) -> str:
    """The OTLP/HTTP traces URL from the standard variables: the signal-specific one is used as given, the
    generic one gets `/v1/traces` appended (the OTLP exporter specification's rule)."""
    if traces_endpoint:
        return traces_endpoint
    return endpoint.rstrip("/") + "/v1/traces"


def parse_headers(value: str) -> dict[str, str]:
    """OTEL_EXPORTER_OTLP_HEADERS: "k1=v1,k2=v2", values percent-encoded (W3C Baggage style)."""
    headers: dict[str, str] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError("OTEL_EXPORTER_OTLP_HEADERS must be a comma-separated list of key=value pairs")
        headers[key.strip()] = unquote(raw.strip())
    return headers


class GenAIExporter:
    """Delivers records as GenAI spans to one OTLP/HTTP (protobuf) traces endpoint."""

    name = "otel"

    def __init__(
        self,
        *,
        url: str,
        headers: Mapping[str, str],
        service_name: str,
        version: str,
        content: bool,
        timeout: float = 10.0,
        max_request_bytes: int = 3_000_000,
        route: Route = DIRECT,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the OTLP endpoint must be an http(s) URL, got {url!r}")
        self._url = url
        self._headers = {
            **headers,
            "Content-Type": "application/x-protobuf",
            "Content-Encoding": "gzip",
        }
        self._encoder = GenAIEncoder(service_name=service_name, version=version, content=content)
        self._max_request_bytes = max_request_bytes
        self._poster = HttpPoster(label="otlp", timeout=timeout, secrets=tuple(headers.values()), route=route)

    async def export(self, records: Sequence[CallRecord]) -> ExportResult:
        result = ExportResult(ExportStatus.OK)
        bodies = gzipped_chunks(
            records,
            self._encoder.record_parts,
            self._encoder.request_parts,
            max_bytes=self._max_request_bytes,
            label="otlp",
        )
        for body in bodies:
            result = await self._poster.post(self._url, body, self._headers)
            if not result.ok:
                break
        return result

    async def aclose(self) -> None:
        await self._poster.aclose()
