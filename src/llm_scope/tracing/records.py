"""CallRecord ⇄ JSON, and the enrichment every record gets before it is stored: cost, redaction, privacy.

Enrichment happens in the background writer, never on the request path, but it shares the process with
the request path and runs for every call, so the common case (nothing to scrub) must stay cheap.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from operator import attrgetter, itemgetter
from typing import Any

from .. import jsoncodec
from ..accounting.cost import Prices, compute_cost
from ..accounting.redact import may_hold_secrets, redact_text, redact_value
from ..accounting.usage import usage_known
from ..types import CallRecord, Cost, Usage
from .blocks import with_refs
from .screen import CleanBlocks

_FIELDS = tuple(f.name for f in dataclasses.fields(CallRecord))
_KNOWN = frozenset(_FIELDS)
# Usage and Cost are stored as their common fields, always, and their rarer buckets only when non-zero (a
# 1-hour cache write, the parts of a cost billed at their own rate): most calls have none, and every byte of
# a record's JSON is paid for on each write.
_USAGE_FIELDS: tuple[str, ...] = ("input", "output", "total", "cache_read", "cache_write", "reasoning")
_USAGE_EXTRA: tuple[str, ...] = tuple(f for f in Usage.__slots__ if f not in _USAGE_FIELDS)
_COST_FIELDS: tuple[str, ...] = ("input", "output", "total")
_COST_EXTRA: tuple[str, ...] = tuple(f for f in Cost.__slots__ if f not in _COST_FIELDS)
# attrgetter/itemgetter over every field read or fill a record in one C call; a comprehension with getattr
# (or keyword arguments to the dataclass) costs several times more per record, and this runs per call.
_record_values = attrgetter(*_FIELDS)
# Every field, the common ones first: one C call, and the rarer ones looked at only when one is non-zero.
_usage_all = attrgetter(*_USAGE_FIELDS, *_USAGE_EXTRA)
_cost_all = attrgetter(*_COST_FIELDS, *_COST_EXTRA)
_stored_fields = itemgetter(*_FIELDS)
_stored_usage = itemgetter(*_USAGE_FIELDS)
_stored_cost = itemgetter(*_COST_FIELDS)


def _as_stored(
    obj: Usage | Cost, get_all: attrgetter[Any], fields: tuple[str, ...], extras: tuple[str, ...]
) -> dict[str, Any]:
    values = get_all(obj)
    out = dict(zip(fields, values, strict=False))  # the common fields: zip stops at the shorter
    if any(values[len(fields) :]):
        for name, value in zip(extras, values[len(fields) :], strict=True):
            if value:
                out[name] = value
    return out


# The record's fields that the traces columns hold as they are (see SUMMARY_COLUMNS): a record stored with
# `in_columns` leaves them out of its JSON (about half of a short call's bytes, each one paid for on every
# write), and `with_columns` puts them back from the row. Not tool_calls: its column turns {} into NULL.
IN_COLUMNS: tuple[str, ...] = (
    "trace_id",
    "route",
    "start_time",
    "end_time",
    "user_id",
    "session_id",
    "client",
    "requested_model",
    "resolved_model",
    "provider",
    "status_code",
    "error_type",
    "stream",
    "key_id",
    "subagent",
    "request_digest",
    "repo",
    "branch",
    "session_derived",
    "resent",
)
_FLAGS = frozenset(("stream", "session_derived", "resent"))  # bools, stored as 0/1
_OWN_FIELDS = tuple(f for f in _FIELDS if f not in IN_COLUMNS)
_own_values = attrgetter(*_OWN_FIELDS)


def record_to_json(record: CallRecord, *, with_input: bool = True, in_columns: bool = False) -> str:
    """Hand-rolled rather than dataclasses.asdict, which deep-copies every message (5-10x slower).

    Without the input, "input" is null: the store keeps the input apart, as blocks (see `blobs`). With
    `in_columns`, the fields the traces row holds in its columns are left out (see IN_COLUMNS)."""
    if in_columns:
        data = dict(zip(_OWN_FIELDS, _own_values(record), strict=True))
    else:
        data = dict(zip(_FIELDS, _record_values(record), strict=True))
    if not with_input:
        data["input"] = None
    data["usage"] = _as_stored(record.usage, _usage_all, _USAGE_FIELDS, _USAGE_EXTRA)
    cost = record.cost
    if cost is not None:
        data["cost"] = _as_stored(cost, _cost_all, _COST_FIELDS, _COST_EXTRA)
    return jsoncodec.dumps_str(data)


def with_columns(data: dict[str, Any], values: Sequence[Any]) -> dict[str, Any]:
    """A stored record's dict with the fields it left to its row put back: `values` are the row's IN_COLUMNS.
    A record stored whole (by a version before this, or not by the store) keeps its own fields."""
    if "trace_id" not in data:
        for name, value in zip(IN_COLUMNS, values, strict=True):
            data[name] = bool(value) if name in _FLAGS and value is not None else value
    return data


def record_from_json(text: str) -> CallRecord:
    return record_from_dict(jsoncodec.loads(text))


def record_from_dict(data: dict[str, Any]) -> CallRecord:
    """Rebuild a stored record; fields a record written by an older version lacks take their defaults."""
    usage = data.get("usage") or {}
    try:
        built = Usage(*_stored_usage(usage))
        if len(usage) > len(_USAGE_FIELDS):
            built = Usage(**usage)
        data["usage"] = built
    except KeyError:
        data["usage"] = Usage(**usage)
    cost = data.get("cost")
    if isinstance(cost, dict):
        try:
            data["cost"] = Cost(*_stored_cost(cost)) if len(cost) == len(_COST_FIELDS) else Cost(**cost)
        except KeyError:
            data["cost"] = Cost(**cost)
    else:
        data["cost"] = None
    try:
        return CallRecord(*_stored_fields(data))
    except KeyError:
        return CallRecord(**{k: v for k, v in data.items() if k in _KNOWN})


def enrich(
    record: CallRecord,
    *,
    prices_for: Callable[[CallRecord], Prices | None],
    secrets: Sequence[str],
    trace_content: bool,
    clean: CleanBlocks | None = None,
) -> CallRecord:
    """Price the call, drop content when asked to, and scrub secrets from whatever text remains.

    Scrubbing walks and copies every message, so it runs only where a cheap screen over the JSON text
    (which holds every string and key the walk would visit) finds something that could be a secret. The
    input is screened a message at a time, and messages found clean before (`clean`, by default this
    process's memory of them) are not screened again: a coding agent repeats its whole conversation.
    """
    if record.cost is None and record.usage.total:
        record.cost = compute_cost(record.usage, prices_for(record))
    secrets = secrets if isinstance(secrets, tuple) else tuple(secrets)  # read more than once below
    if not trace_content:
        record.input = record.output = None
    if not record.metadata:
        record.metadata = {}
    # A short input is kept as it is (see INLINE_MAX); where it, the output and the metadata hold nothing to
    # scrub, there is nothing more to do.
    inline = short_input_json(record.input)
    if not _all_clean(record, inline, secrets):
        if record.input is not None and (inline is None or may_hold_secrets(inline, secrets)):
            digests: list[bytes | None] = []
            given = getattr(record.input, "digests", None)  # taken where it was read from the body (bodyblocks)
            scrubbed = (_CLEAN if clean is None else clean).scrub_input(record.input, secrets, digests, given)
            record.input = with_refs(scrubbed, digests)  # the store and the exporters key its blocks by these
        if (record.output is not None or record.metadata) and _may_hold_secrets(
            (record.output, record.metadata), secrets
        ):
            record.output = redact_value(record.output, secrets)
            record.metadata = redact_value(record.metadata, secrets)
    if record.error_message and may_hold_secrets(record.error_message, secrets):
        record.error_message = redact_text(record.error_message, secrets)
    return record


# The trace helper's memory of clean messages, for its life: per process, like an lru_cache, and bounded.
_CLEAN = CleanBlocks()
# An input whose JSON is at most this long is stored inline in its record, not as blocks (see `blobs`): a
# block's key and its row cost more than such an input itself, and hashing it (pickle, sha256, refs) cost
# more than screening its JSON whole (~4.5 against ~1 µs a short call, bench.micro_tracing).
INLINE_MAX = 1024
_FEW_BLOCKS = 4  # a list or dict with more entries than this is not measured for inlining: few are short


def short_input_json(value: Any) -> str | None:
    """The input's JSON where it is short enough to keep inline (INLINE_MAX), else None. An input that
    arrived as the body's bytes (bodyblocks' digests) is long by construction and never measured; one of a
    few blocks is measured once (enrich passes the text on to the screen)."""
    if isinstance(value, list | dict):
        if len(value) > _FEW_BLOCKS or getattr(value, "digests", None) is not None or hasattr(value, "refs"):
            return None
        if type(value) is dict and not all(type(k) is str for k in value):
            return None
    elif not isinstance(value, str):
        return None
    try:
        text = jsoncodec.dumps_str(value)
    except Exception:  # e.g. a lone surrogate the encoder refuses: the block path deals with it
        return None
    return text if len(text) <= INLINE_MAX else None


def _all_clean(record: CallRecord, text: str | None, secrets: tuple[str, ...]) -> bool:
    """A short call's input (`text`, its JSON), output and metadata screened as one text: one screen instead
    of two. (A marker found across the seam of the two texts only sends them to the screens one by one.)"""
    if text is None:
        return False
    if record.output is not None or record.metadata:
        try:
            text += jsoncodec.dumps_str((record.output, record.metadata))
        except Exception:  # e.g. a lone surrogate the encoder refuses: let the exact walk decide
            return False
    return not may_hold_secrets(text, secrets)


def _may_hold_secrets(value: Any, secrets: Sequence[str]) -> bool:
    try:
        text = jsoncodec.dumps_str(value)
    except Exception:  # e.g. a lone surrogate the encoder refuses: let the exact walk decide
        return True
    return may_hold_secrets(text, secrets)


SUMMARY_COLUMNS = (
    "trace_id",
    "start_time",
    "end_time",
    "route",
    "user_id",
    "session_id",
    "client",
    "requested_model",
    "resolved_model",
    "provider",
    "status_code",
    "error_type",
    "stream",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_input",
    "cost_output",
    "cost_total",
    "duration_ms",
    "ttft_ms",
    "upstream_ms",
    "key_id",
    # The parts of the cost billed at their own rate (of cost_input: cache reads, cache writes and their 1-hour
    # share; of cost_output: reasoning), so the dashboard can sum cost by bucket; NULL where the cost is unknown.
    "cost_cache_read",
    "cost_cache_write",
    "cost_cache_write_1h",
    "cost_reasoning",
    "tool_calls",
    "subagent",
    "retries",
    "resent",
    "request_digest",
    "repo",
    "branch",
    "session_derived",
)


def summary_values(record: CallRecord) -> tuple[Any, ...]:
    """The flat columns the local store indexes and the dashboard lists, in SUMMARY_COLUMNS order.

    A tuple, not a dict: the store binds it straight into its INSERT. A non-finite cost (a price of .inf in
    the config) is stored as NULL, as the JSON the store used to go through made it.
    """
    start = record.start_time
    first_token = record.completion_start_time
    upstream = record.upstream_latency
    usage = record.usage if usage_known(record) else _UNKNOWN_USAGE
    cost = record.cost
    parts: tuple[float | None, ...]
    if cost is None:
        cost_input = cost_output = cost_total = None
        parts = _NO_PARTS
    else:
        cost_input, cost_output, cost_total = cost.input, cost.output, cost.total
        parts = (cost.cache_read, cost.cache_write, cost.cache_write_1h, cost.reasoning)
        if not math.isfinite(cost_input + cost_output + cost_total + sum(parts)):
            cost_input, cost_output, cost_total = (
                x if math.isfinite(x) else None for x in (cost_input, cost_output, cost_total)
            )
            parts = tuple(x if math.isfinite(x) else None for x in parts)
    return (
        record.trace_id,
        start,
        record.end_time,
        record.route,
        record.user_id,
        record.session_id,
        record.client,
        record.requested_model,
        record.resolved_model,
        record.provider,
        record.status_code,
        record.error_type,
        int(record.stream),
        usage.input,
        usage.output,
        usage.total,
        usage.cache_read,
        usage.cache_write,
        usage.reasoning,
        cost_input,
        cost_output,
        cost_total,
        round(max(0.0, record.end_time - start) * 1000, 3),
        round((first_token - start) * 1000, 3) if first_token else None,
        round(upstream * 1000, 3) if upstream is not None else None,
        record.key_id,
        *parts,
        *_session_facts(record),
    )


def _session_facts(record: CallRecord) -> tuple[Any, ...]:
    """tool_calls as JSON {name: count} (NULL: none), the subagent marker, the gateway's own retries, whether
    the client re-sent a failed request, the request digest, repo, branch, and whether the session is derived."""
    tools = record.tool_calls
    attempts = record.metadata.get("gateway_attempts") if record.metadata else None
    return (
        jsoncodec.dumps_str(tools) if tools else None,
        record.subagent,
        attempts - 1 if isinstance(attempts, int) and attempts > 1 else 0,
        int(record.resent),
        record.request_digest,
        record.repo,
        record.branch,
        int(record.session_derived),
    )


COST_PARTS = ("cache_read", "cache_write", "cache_write_1h", "reasoning")  # the cost_<part> columns
_NO_PARTS: tuple[None, ...] = (None,) * len(COST_PARTS)


class _UnknownUsage:
    """Token columns of a call whose usage is unknown: NULL, which every SUM skips and the dashboard shows as
    unknown, instead of zeros that read as "free"."""

    input = output = total = cache_read = cache_write = reasoning = None


_UNKNOWN_USAGE: Any = _UnknownUsage()


def summary_row(record: CallRecord) -> dict[str, Any]:
    return dict(zip(SUMMARY_COLUMNS, summary_values(record), strict=True))
