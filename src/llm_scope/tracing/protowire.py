"""The protobuf wire format for the slice of OTLP we send: varints, length-delimited fields, attributes.

Written by hand because building opentelemetry-proto messages cost 55-60 µs per record (see `otlp`). These
are the generic pieces, knowing nothing of Langfuse or CallRecords; `otlp` assembles spans from them.
Field numbers: KeyValue{key 1, value 2}, AnyValue{string_value 1, bool_value 2, int_value 3, double_value 4,
array_value 5}, ArrayValue{values 1}; a span's attributes are its field 9, a ScopeSpans' spans its field 2.
Also the span entry as segments (`splice`: plain bytes and kept pieces), and trace and span ids.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from functools import lru_cache
from hashlib import sha256
from typing import Final

from .splice import Segment, size_of

AttrValue = str | bool | int | float | Sequence[str]

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
_pack_double: Final = struct.Struct("<d").pack
_BYTE: Final = [bytes((i,)) for i in range(256)]


def varint(n: int) -> bytes:
    """Unsigned LEB128; callers map negative int64 values to their 64-bit two's complement first."""
    if n < 0x80:
        return _BYTE[n]
    if n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def text(value: str) -> bytes:
    # Lone surrogates (a client's JSON may hold "\ud800") are not UTF-8; send them as visible escapes.
    return value.encode("utf-8", "backslashreplace")


def length_delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


@lru_cache(maxsize=4096)
def key_field(key: str) -> bytes:
    """KeyValue.key, tag and length included; cached because most keys recur on every span."""
    data = text(key)
    return length_delimited(b"\x0a", data) if data else b""


def any_value(value: AttrValue) -> bytes:
    """An AnyValue message body."""
    if isinstance(value, str):
        return length_delimited(b"\x0a", text(value))
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    if isinstance(value, bool):  # before int: bool is an int
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(f"attribute value {value} is outside int64")
        return b"\x18" + varint(value & 0xFFFF_FFFF_FFFF_FFFF)
    items = b"".join(length_delimited(b"\x0a", length_delimited(b"\x0a", text(item))) for item in value)
    return length_delimited(b"\x2a", items) if items else b""  # an empty list leaves the value unset


def attribute(key: str, value: AttrValue) -> bytes:
    """One Span.attributes entry (field 9): tag, length and KeyValue."""
    return encoded_attribute(key_field(key), value)


def encoded_attribute(key_field: bytes, value: AttrValue) -> bytes:
    if type(value) is str:
        return string_attribute(key_field, text(value))
    return entry(key_field, any_value(value))


def entry(key_field: bytes, body: bytes) -> bytes:
    """A Span.attributes entry around an encoded key and AnyValue."""
    size = len(key_field) + len(body) + 2  # KeyValue size when every length fits in one byte
    if size < 0x80 and body:
        return b"\x4a%c%s\x12%c%s" % (size, key_field, len(body), body)
    kv = key_field + length_delimited(b"\x12", body) if body else key_field
    return b"\x4a" + varint(len(kv)) + kv


def string_attribute(key_field: bytes, data: bytes) -> bytes:
    n = len(data)
    size = len(key_field) + n + 4  # KeyValue size when every length fits in one byte
    if size < 0x80:
        return b"\x4a%c%s\x12%c\x0a%c%s" % (size, key_field, n + 2, n, data)
    return string_attribute_head(key_field, n) + data


def string_attribute_head(key_field: bytes, n: int) -> bytes:
    """string_attribute's bytes before its `n` bytes of text: what lets the text stay in parts (`inputruns`)."""
    value = b"\x0a" + varint(n)
    value = b"\x12" + varint(len(value) + n) + value
    return b"\x4a" + varint(len(key_field) + len(value) + n) + key_field + value


# Span attributes of values that recur across calls (model, route, provider, ...); bounded, since some of
# the values come from clients. typed: True and 1 encode differently.
recurring_attribute: Final = lru_cache(maxsize=2048, typed=True)(attribute)


def span_entry_bytes(parts: Sequence[bytes]) -> bytes:
    """A ScopeSpans.spans entry (field 2) of plain bytes: a short call's, in one join."""
    body = b"".join(parts)
    return b"\x12" + varint(len(body)) + body


def span_entry(parts: Sequence[Segment]) -> list[Segment]:
    """A ScopeSpans.spans entry as segments (`splice`): the plain bytes joined between the pieces."""
    out: list[Segment] = []
    plain: list[bytes] = []
    size = 0
    for part in parts:
        size += len(part)
        if isinstance(part, bytes):
            plain.append(part)
        else:
            out.append(b"".join(plain))
            out.append(part)
            plain = []
    out.append(b"".join(plain))
    first = out[0]
    assert isinstance(first, bytes)
    out[0] = b"\x12" + varint(size) + first
    return out


def export_request(resource_field: bytes, scope_field: bytes, spans: Iterable[Sequence[Segment]]) -> list[Segment]:
    """An ExportTraceServiceRequest of one ResourceSpans and one ScopeSpans around spans already encoded, as
    segments: both exporters frame their spans this way, only their resource and scope differ."""
    segments = [segment for span in spans for segment in span]
    spans_size = size_of(segments)
    scope_spans = b"\x12" + varint(len(scope_field) + spans_size) + scope_field
    head = resource_field + scope_spans  # the ResourceSpans up to its spans
    out: list[Segment] = [b"\x0a" + varint(len(head) + spans_size) + head]
    out += segments
    return out


def trace_id_of(raw: str) -> bytes:
    """The record's id if valid for OTLP, else a stable stand-in: one bad id must not wedge a batch."""
    try:
        trace_id = bytes.fromhex(raw)
    except ValueError:
        trace_id = b""
    if len(trace_id) == 16 and any(trace_id):
        return trace_id
    return _nonzero(sha256(f"llm-scope-trace:{raw}".encode()).digest()[:16])


def span_id_of(seed: bytes) -> bytes:
    """From "<trace id hex>:<role>", so a retried export reuses the span ids of the first attempt."""
    return _nonzero(sha256(seed).digest()[:8])


def _nonzero(ident: bytes) -> bytes:
    # OTLP treats an all-zero id as invalid; sha256 makes this practically unreachable, but cheap to hold.
    return ident if any(ident) else ident[:-1] + b"\x01"
