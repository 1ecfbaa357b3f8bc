"""CallRecord → OTLP/protobuf bytes, written straight in the protobuf wire format.

Building opentelemetry-proto messages attribute by attribute and serializing them cost 55-60 µs of CPU per
record, against a budget of 0.3 ms for everything a call costs. We only ever send one small, fixed slice of
the OTLP schema, so we write its bytes ourselves (the protobuf pieces are in `protowire`): constant
attributes are encoded once per encoder, the attributes both spans share once per record, and the values
that repeat from call to call (route, model, provider, client, status) come from small caches.
tests/tracing/test_otlp.py decodes the output with the real opentelemetry-proto classes and holds it equal
to the message-building encoder this replaced.

Each record becomes one span: a root generation (an `embedding` for embeddings calls) that carries model,
usage, cost and content, as the Langfuse SDK's OpenAI integration sends a call. Langfuse takes a trace's
input and output from its root observation; a separate root span would have to carry the prompt and answer
a second time (the bytes of a call are mostly its content), so the generation is the root and the gateway's
own timings (upstream latency) go in its metadata. The instrumentation scope is named `langfuse-sdk`:
Langfuse copies every attribute of any other scope into `metadata.attributes`, which doubled each
observation's metadata (34 entries instead of 16), and what we send is exactly the SDK's attribute
vocabulary. Attribute names and encodings mirror the official Langfuse Python SDK (5.x) (see
/work/shared/langfuse/). Span ids derive from the trace id, so a retried export rewrites the same
observation instead of duplicating it.

Message and field numbers, from opentelemetry/proto/{collector/trace,trace,common,resource}/v1/*.proto:
ExportTraceServiceRequest{resource_spans 1} ResourceSpans{resource 1, scope_spans 2} Resource{attributes 1}
ScopeSpans{scope 1, spans 2} InstrumentationScope{name 1, version 2} Span{trace_id 1, span_id 2,
parent_span_id 4, name 5, kind 6, start_time_unix_nano 7 fixed64, end_time_unix_nano 8 fixed64,
attributes 9, status 15, flags 16 fixed32} Status{message 2, code 3} KeyValue{key 1, value 2}
AnyValue{string_value 1, bool_value 2, int_value 3, double_value 4, array_value 5} ArrayValue{values 1}.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from functools import lru_cache
from operator import attrgetter
from typing import Any, Final

from llm_scope.types import CallRecord, Cost, Usage

from .. import internals
from ..accounting.usage import refused_before_answer, usage_known
from ..apis import FAMILIES
from .inputruns import InputRuns
from .protowire import (
    INT64_MAX,
    INT64_MIN,
    AttrValue,
    any_value,
    attribute,
    encoded_attribute,
    entry,
    export_request,
    key_field,
    length_delimited,
    recurring_attribute,
    span_entry,
    span_entry_bytes,
    span_id_of,
    string_attribute,
    text,
    trace_id_of,
    varint,
)
from .splice import Segment, raw_of

_ENVIRONMENT_RE: Final = re.compile(r"^(?!langfuse)[a-z0-9_-]{1,40}$")

# Routes whose calls Langfuse shows as embeddings rather than generations.
EMBEDDING_ROUTES: Final = frozenset(f.route for f in FAMILIES if f.genai_operation == "embeddings")


def validate_environment(environment: str) -> str:
    """Return `environment` if Langfuse will accept it; otherwise every event would be dropped silently."""
    if not _ENVIRONMENT_RE.match(environment):
        raise ValueError(
            f"invalid Langfuse environment {environment!r}: use 1-40 of [a-z0-9_-], not starting 'langfuse'"
        )
    return environment


SDK_NAME: Final = "llm-scope"
# Langfuse treats spans of this scope as its SDK's own and does not copy their attributes into metadata.
SCOPE_NAME: Final = "langfuse-sdk"
# Generations are named after the provider (the model has its own field); this when none was chosen.
FALLBACK_GENERATION_NAME: Final = "llm-call"

_pack_time: Final = struct.Struct("<BQ").pack  # tag, then fixed64
_pack_times: Final = struct.Struct("<BQBQ").pack

# Span fields that never change: kind SPAN_KIND_INTERNAL (1); flags fixed32 0x100, that is
# SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK with is_remote unset: "parent is local", as the SDK sends.
_KIND_INTERNAL: Final = b"\x30\x01"
_FLAGS_PARENT_LOCAL: Final = b"\x85\x01" + struct.pack("<I", 0x100)
# An OK span still carries an empty Status, as the message-building encoder wrote it (status.SetInParent()).
_STATUS_UNSET: Final = b"\x7a\x00"
_STATUS_CODE_ERROR: Final = b"\x18\x02"

_KEY_MODEL_PARAMETERS: Final = key_field("langfuse.observation.model.parameters")
_KEY_INPUT: Final = key_field("langfuse.observation.input")
_KEY_OUTPUT: Final = key_field("langfuse.observation.output")
_KEY_USAGE: Final = key_field("langfuse.observation.usage_details")
_KEY_COST: Final = key_field("langfuse.observation.cost_details")
_KEY_COMPLETION_START: Final = key_field("langfuse.observation.completion_start_time")
_KEY_STATUS_MESSAGE: Final = key_field("langfuse.observation.status_message")
_KEY_UPSTREAM_LATENCY: Final = key_field("langfuse.observation.metadata.upstream_latency")
# The gateway's own facts in the generation's metadata, in order, but for upstream_latency (last, and uncached).
_GATEWAY_FACTS: Final = (
    "requested_model",
    "provider",
    "status_code",
    "stream",
    "client",
    "client_version",
    "finish_reason",
    "error_type",
)
_gateway_facts_of: Final = attrgetter(*_GATEWAY_FACTS)


class RecordEncoder:
    """Encodes CallRecords for one Langfuse environment and release; keeps what is constant between calls."""

    def __init__(self, *, environment: str, release: str, version: str = "", service_name: str = SDK_NAME) -> None:
        """`release` is the operator's (LANGFUSE_RELEASE, may be empty); `version` is llm-scope's own."""
        resource: dict[str, AttrValue] = {
            "service.name": service_name,
            "telemetry.sdk.language": "python",
            "telemetry.sdk.name": SDK_NAME,
        }
        if release:
            resource["service.version"] = release  # Langfuse also uses it as the observation `version`
        # Resource.attributes is field 1, not 9; the rest of an entry is the same.
        attributes = b"".join(b"\x0a" + attribute(key, value)[1:] for key, value in resource.items())
        scope = length_delimited(b"\x0a", SCOPE_NAME.encode())
        if version:
            scope += length_delimited(b"\x12", text(version))
        self._resource_field = length_delimited(b"\x0a", attributes)
        self._scope_field = length_delimited(b"\x0a", scope)
        root = attribute("langfuse.internal.is_app_root", True)
        self._heads = {
            False: root + attribute("langfuse.observation.type", "generation"),
            True: root + attribute("langfuse.observation.type", "embedding"),
        }
        self._version = attribute("langfuse.observation.metadata.llm_scope_version", version) if version else b""
        self._environment = attribute("langfuse.environment", environment)
        if release:
            self._environment += attribute("langfuse.release", release)
        self._inputs = InputRuns(_dumps)  # a coding agent's conversation: encoded and compressed once a block
        # Both keyed by values that mostly repeat from call to call; typed, as True and 1 encode differently.
        self._route: Callable[[Any, Any, Any, Any], tuple[bytes, bytes]] = lru_cache(maxsize=256, typed=True)(
            self._encode_route
        )
        self._gateway_facts: Callable[..., bytes] = lru_cache(maxsize=256, typed=True)(_gateway_facts)
        # Usage and cost recur from call to call (the same prompt, the same answer length): their attributes
        # are encoded once (~2.5 µs each of a short call's ~17). Keyed by their fields, typed: 1, 1.0 and
        # True are equal keys but encode differently.
        self._usage: Callable[..., bytes] = lru_cache(maxsize=1024, typed=True)(_usage_attribute)
        self._cost: Callable[..., bytes] = lru_cache(maxsize=1024, typed=True)(_cost_attribute)

    def request(self, records: Sequence[bytes]) -> bytes:
        """One ExportTraceServiceRequest around records already encoded by `record`."""
        return raw_of(self.request_parts([[r] for r in records]))

    def request_parts(self, records: Sequence[Sequence[Segment]]) -> list[Segment]:
        """request(), as segments around records encoded by `record_parts`."""
        return export_request(self._resource_field, self._scope_field, records)

    def record(self, record: CallRecord) -> bytes:
        """The record's one span, a ScopeSpans.spans entry; raises if unencodable."""
        return raw_of(self.record_parts(record))

    def record_parts(self, record: CallRecord) -> list[Segment]:
        """record(), as segments: the input's large parts as the pieces kept for them (`inputruns`)."""
        trace_id = trace_id_of(record.trace_id)
        start, end = record.start_time, max(record.end_time, record.start_time)  # end_time 0.0 means unset

        # Langfuse v4 reads user, session, tags and trace name off each span it stores.
        client = record.client if type(record.client) is str else None  # a tag only when it is a plain name
        name, shared = self._route(record.provider, record.resolved_model, record.route, client)
        if record.session_id:
            shared = attribute("session.id", record.session_id) + shared
        if record.user_id:  # few users make most calls
            shared = recurring_attribute("user.id", record.user_id) + shared

        if record.is_error:
            message = text(_status_message(record))
            status = length_delimited(b"\x12", message) + _STATUS_CODE_ERROR if message else _STATUS_CODE_ERROR
            tail = length_delimited(b"\x7a", status) + _FLAGS_PARENT_LOCAL
        else:
            tail = _STATUS_UNSET + _FLAGS_PARENT_LOCAL
        ids = b"\x0a\x10" + trace_id + b"\x12\x08" + span_id_of(trace_id.hex().encode() + b":generation")
        head = self._heads[record.route in EMBEDDING_ROUTES]
        attrs, spliced = self._generation(record)
        parts = (ids, name, _KIND_INTERNAL, _times(start, end), head, shared, *attrs, tail)
        return span_entry(parts) if spliced else [span_entry_bytes(parts)]  # type: ignore[arg-type]  # all bytes

    def _encode_route(self, provider: str, model: str, route: str, client: str | None) -> tuple[bytes, bytes]:
        """The span name, and the trace attributes after user and session: they depend on nothing else.
        The client (a normalized tool name) is a tag too, so Langfuse filters traces by tool."""
        tail = b""
        if tags := list(dict.fromkeys(t for t in (provider, model, route, client) if t)):
            tail += attribute("langfuse.trace.tags", tags)
        tail += attribute("langfuse.trace.name", route) + self._environment
        return _name_field(provider or FALLBACK_GENERATION_NAME), tail

    def _generation(self, record: CallRecord) -> tuple[list[Segment], bool]:
        """The generation's own attributes, then the caller's metadata (trace level) and the gateway's facts."""
        attrs: list[Segment] = []
        spliced = False
        if model := record.resolved_model or record.requested_model:
            attrs.append(recurring_attribute("langfuse.observation.model.name", model))
        if record.model_parameters:
            attrs.append(string_attribute(_KEY_MODEL_PARAMETERS, text(_json(record.model_parameters))))
        if record.input is not None:
            content = self._inputs.attribute(_KEY_INPUT, record.input)
            spliced = not isinstance(content, bytes)  # a piece among its parts
            attrs += [content] if isinstance(content, bytes) else content
        if record.output is not None:
            attrs.append(string_attribute(_KEY_OUTPUT, text(_json(record.output))))
        if usage_known(record):
            attrs.append(self._usage(_output_cut(record), *_usage_fields(record.usage)))
        if record.cost is not None:
            attrs.append(self._cost(record.usage.cache_write_1h, *_cost_fields(record.cost)))
        if record.completion_start_time is not None:
            iso = f'"{_iso(record.completion_start_time)}"'  # json.dumps of a string with nothing to escape
            attrs.append(string_attribute(_KEY_COMPLETION_START, iso.encode()))
        if record.is_error:
            attrs.append(recurring_attribute("langfuse.observation.level", "ERROR"))
            attrs.append(string_attribute(_KEY_STATUS_MESSAGE, text(_status_message(record))))
        if record.metadata:
            attrs += _caller_metadata(record.metadata)
        facts = _gateway_facts_of(record)
        try:
            attrs.append(self._gateway_facts(*facts))  # mostly the same from call to call
        except TypeError:  # something unhashable where a plain value belongs: take the long way
            attrs += _generation_metadata(zip(_GATEWAY_FACTS, facts, strict=True))
        latency = _metadata_value(record.upstream_latency)
        if latency is not None and latency != "":
            attrs.append(encoded_attribute(_KEY_UPSTREAM_LATENCY, latency))
        if record.tool_calls or record.subagent or record.repo:  # session facts: on some calls only
            attrs += _generation_metadata(_session_facts(record))
        attrs.append(self._version)
        return attrs, spliced


def usage_details(record: CallRecord) -> dict[str, int] | None:
    """The usage to send, or None when it is unknown (Langfuse then estimates it from the content).

    Zeros on a success mean "not reported". A call the upstream refused or failed before answering billed
    nothing, and explicit zeros stop Langfuse from billing its prompt; but a stream that broke off or was
    cancelled after it started, or a call that timed out or lost its client, may well have been billed:
    its usage is whatever was reported (Anthropic's `message_start` gives the input) or unknown, never 0.
    """
    return _details(record.usage, _output_cut(record)) if usage_known(record) else None


def _output_cut(record: CallRecord) -> bool:
    """Cut off before the output was counted: the input side is known; output and total are unknown."""
    return record.is_error and not record.usage.output and not refused_before_answer(record)


def _details(usage: Usage, output_cut: bool) -> dict[str, int]:
    details = usage.details()
    if output_cut:
        del details["output"], details["total"]
    return details


_usage_fields: Final = attrgetter(*(f.name for f in fields(Usage)))
_cost_fields: Final = attrgetter(*(f.name for f in fields(Cost)))


def _usage_attribute(output_cut: bool, *values: int) -> bytes:
    return string_attribute(_KEY_USAGE, text(_dumps(_details(Usage(*values), output_cut))))


def _cost_attribute(cache_write_1h: int, *values: float) -> bytes:
    # Cost.details reads nothing of the usage but whether its cache writes have a 1-hour share.
    return string_attribute(_KEY_COST, text(_dumps(Cost(*values).details(Usage(cache_write_1h=cache_write_1h)))))


def _session_facts(record: CallRecord) -> Iterable[tuple[str, Any]]:
    """What the dashboard's session view shows, so a Langfuse user can filter on it too: the tool calls the
    model made by name, the subagent marker the tool sent, and the repository and branch (only with
    LLM_SCOPE_SESSION_REPO on). The gateway's retries are already there, as `gateway_attempts`."""
    yield "tool_calls", record.tool_calls
    yield "subagent", record.subagent
    yield "repo", record.repo
    yield "branch", record.branch


def _gateway_facts(*values: Any) -> bytes:
    return b"".join(_generation_metadata(zip(_GATEWAY_FACTS, values, strict=True)))


def _generation_metadata(items: Iterable[tuple[Any, Any]]) -> list[bytes]:
    # Through a dict, as keys that differ (1, "1") can format the same: the last value wins, in first place.
    attrs: dict[str, AttrValue] = {}
    for key, value in items:
        if (encoded := _metadata_value(value)) is not None and encoded != "":
            attrs[f"langfuse.observation.metadata.{key}"] = encoded
    return [attribute(key, value) for key, value in attrs.items()]


def _caller_metadata(metadata: Mapping[Any, Any]) -> list[bytes]:
    """The caller's metadata as trace metadata: on the one span, beside (never clashing with) the gateway's
    facts, which are the observation's metadata."""
    if not all(type(key) is str for key in metadata):
        attrs: dict[str, AttrValue] = {}
        for key, value in metadata.items():  # through a dict, as in _generation_metadata
            if (encoded := _metadata_value(value)) is not None:
                attrs[f"langfuse.trace.metadata.{key}"] = encoded
        return [attribute(key, value) for key, value in attrs.items()]
    out = []
    for key, value in metadata.items():
        if (encoded := _metadata_value(value)) is not None:
            out.append(entry(_metadata_key(key), any_value(encoded)))
    return out


@lru_cache(maxsize=1024)
def _metadata_key(key: str) -> bytes:
    return key_field(f"langfuse.trace.metadata.{key}")


def _name_field(name: str) -> bytes:
    data = text(name)
    return b"\x2a" + varint(len(data)) + data if data else b""


def _times(start: float, end: float) -> bytes:
    """Span start and end as fixed64 nanoseconds; struct.error past 2**64, and the record is dropped."""
    first, last = max(0, round(start * 1_000_000_000)), max(0, round(end * 1_000_000_000))
    if first and last:
        return _pack_times(0x39, first, 0x41, last)
    # Zero is proto3's default, which is left out of the wire.
    return (_pack_time(0x39, first) if first else b"") + (_pack_time(0x41, last) if last else b"")


def _status_message(record: CallRecord) -> str:
    return record.error_message or record.error_type or f"HTTP {record.status_code}"


def _iso(ts: float) -> str:
    # Always microseconds and "Z", as the SDK writes it; Langfuse parses exactly this.
    moment = datetime.fromtimestamp(ts, UTC)
    if moment.year < 1000:  # isoformat pads the year to 4 digits, strftime does not
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.isoformat("T", "microseconds")[:-6] + "Z"  # positional: keywords cost a third more here


def _json_encoder() -> Callable[[Any], str]:
    """json.dumps(value, ensure_ascii=False, default=str), through one shared C encoder where `internals`
    vouches for it (a quarter of the cost on our small values), else the public API."""
    return internals.shared_json_encoder() or json.JSONEncoder(ensure_ascii=False, default=str).encode


_dumps: Final = _json_encoder()


def _json(value: Any) -> str:
    # Strings go through unquoted, as the SDK does, so a plain-text prompt doesn't show up as "\"...\"".
    if isinstance(value, str):
        return value
    return _dumps(value)


def _metadata_value(value: Any) -> AttrValue | None:
    # Scalars stay typed (Langfuse keeps numbers as numbers in metadata); anything else goes as JSON.
    if value is None or isinstance(value, str | bool | float):
        return value
    if isinstance(value, int):
        return value if INT64_MIN <= value <= INT64_MAX else str(value)  # past int64 protobuf has no type
    return _dumps(value)
