"""CallRecord ⇄ JSON, and the enrichment every record gets before it is stored: cost, redaction, privacy.

Enrichment happens in the background writer, never on the request path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from .. import jsoncodec
from ..accounting.cost import Prices, compute_cost
from ..accounting.redact import redact_text, redact_value
from ..types import CallRecord, Cost, Usage

_FIELDS = tuple(f.name for f in dataclasses.fields(CallRecord))
_KNOWN = frozenset(_FIELDS)


def record_to_json(record: CallRecord) -> str:
    """Hand-rolled rather than dataclasses.asdict, which deep-copies every message (5-10x slower)."""
    data = {name: getattr(record, name) for name in _FIELDS}
    data["usage"] = _slots(record.usage)
    data["cost"] = _slots(record.cost) if record.cost is not None else None
    return jsoncodec.dumps_str(data)


def _slots(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


def record_from_json(text: str) -> CallRecord:
    data = jsoncodec.loads(text)
    data["usage"] = Usage(**data.get("usage") or {})
    cost = data.get("cost")
    data["cost"] = Cost(**cost) if isinstance(cost, dict) else None
    return CallRecord(**{k: v for k, v in data.items() if k in _KNOWN})


def enrich(
    record: CallRecord,
    *,
    prices_for: Callable[[CallRecord], Prices | None],
    secrets: Sequence[str],
    trace_content: bool,
) -> CallRecord:
    """Price the call, drop content when asked to, and scrub secrets from whatever text remains."""
    if record.cost is None and record.usage.total:
        record.cost = compute_cost(record.usage, prices_for(record))
    if trace_content:
        record.input = redact_value(record.input, secrets)
        record.output = redact_value(record.output, secrets)
    else:
        record.input = record.output = None
    record.metadata = redact_value(record.metadata, secrets) if record.metadata else {}
    if record.error_message:
        record.error_message = redact_text(record.error_message, secrets)
    return record


def summary_row(record: CallRecord) -> dict[str, Any]:
    """The flat columns the local store indexes and the dashboard lists."""
    ttft = (record.completion_start_time - record.start_time) * 1000 if record.completion_start_time else None
    cost = record.cost
    return {
        "trace_id": record.trace_id,
        "start_time": record.start_time,
        "end_time": record.end_time,
        "route": record.route,
        "user_id": record.user_id,
        "session_id": record.session_id,
        "client": record.client,
        "requested_model": record.requested_model,
        "resolved_model": record.resolved_model,
        "provider": record.provider,
        "status_code": record.status_code,
        "error_type": record.error_type,
        "stream": int(record.stream),
        "input_tokens": record.usage.input,
        "output_tokens": record.usage.output,
        "total_tokens": record.usage.total,
        "cache_read_tokens": record.usage.cache_read,
        "cache_write_tokens": record.usage.cache_write,
        "reasoning_tokens": record.usage.reasoning,
        "cost_input": cost.input if cost else None,
        "cost_output": cost.output if cost else None,
        "cost_total": cost.total if cost else None,
        "duration_ms": round(record.duration * 1000, 3),
        "ttft_ms": round(ttft, 3) if ttft is not None else None,
        "upstream_ms": round(record.upstream_latency * 1000, 3) if record.upstream_latency is not None else None,
        "key_id": record.key_id,
    }
