"""Where a session's prompt cache broke, and why.

A break: the cache reads of a turn fall to almost nothing after a warm turn of the same model (another model
has its own cache). Why: the provider caches a prompt's prefix (tool definitions, then the system prompt,
then the messages), so either part of that prefix changed between the two turns, or nothing did and the
cache had expired (Anthropic keeps it 5 minutes by default, OpenAI 5-10). The parts are compared by hash,
from the two turns' stored input; with content tracing off only expiry can be told, and a cause that cannot
be told is said to be unknown.

Read-side only: the two records of each break are read when a session is opened, never on the request path.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from . import blobs
from .store import Store

MIN_WARM = 1024  # cached tokens a turn must have read to count as warm (Anthropic's smallest cacheable prefix)
BREAK_SHARE = 0.1  # a break: reads under this share of the warm turn's
CACHE_TTL = 300.0  # seconds: the shortest time a provider keeps a prefix (Anthropic's default 5 minutes)
CAUSES = ("tools", "system", "messages", "expired")


def break_from(calls: Sequence[dict[str, Any]]) -> list[int | None]:
    """Per call in order: the index of the warm turn whose cache it broke from, or None.

    That turn is the previous one to the same model; it read at least MIN_WARM cached tokens, and this one,
    with a prompt at least as long as what was cached, reads under BREAK_SHARE of it.
    """
    last: dict[Any, tuple[int, int]] = {}  # model -> (index, cache reads) of its previous call with usage
    out: list[int | None] = []
    for index, call in enumerate(calls):
        model = call.get("resolved_model") or call.get("requested_model")
        read, prompt = int(call.get("cache_read_tokens") or 0), int(call.get("input_tokens") or 0)
        before = last.get(model)
        warm = before is not None and before[1] >= MIN_WARM and prompt >= before[1]
        out.append(before[0] if before is not None and warm and read < before[1] * BREAK_SHARE else None)
        if prompt:  # a call without usage (an error) says nothing about the cache
            last[model] = (index, read)
    return out


def cache_breaks(calls: Sequence[dict[str, Any]]) -> list[bool]:
    return [warm is not None for warm in break_from(calls)]


def _plain(value: Any) -> Any:
    """The value without `cache_control` markers: tools move them to the newest block every turn, which
    changes no cached token."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _digest(value: Any) -> str | None:
    if value is None:
        return None
    return hashlib.sha256(json.dumps(_plain(value), sort_keys=True, default=str).encode()).hexdigest()


def _parts(stored_input: Any) -> tuple[Any, Any, list[Any]] | None:
    """(tools, system, messages) of a stored input: Messages and chat keep them under these keys (a bare list
    is the messages alone), Responses has `instructions` and `input`; None when no content was stored."""
    if isinstance(stored_input, list):
        return None, None, stored_input
    if not isinstance(stored_input, dict):
        return None
    messages = stored_input.get("messages", stored_input.get("input"))
    system = stored_input.get("system", stored_input.get("instructions"))
    return stored_input.get("tools"), system, messages if isinstance(messages, list) else [messages]


def break_causes(before: Any, after: Any, gap: float) -> list[str]:
    """What changed in the cached prefix between a warm turn's input and the next one's: "tools", "system",
    "messages" (an earlier message was edited, dropped or compacted), or "expired" (no change, but more than
    CACHE_TTL seconds apart); ["unknown"] when it cannot be told (no stored content, and no long gap)."""
    causes: list[str] = []
    old, new = _parts(before), _parts(after)
    if old is not None and new is not None:
        if _digest(old[0]) != _digest(new[0]):
            causes.append("tools")
        if _digest(old[1]) != _digest(new[1]):
            causes.append("system")
        earlier = old[2]
        if len(new[2]) < len(earlier) or any(_digest(a) != _digest(b) for a, b in zip(earlier, new[2], strict=False)):
            causes.append("messages")
    if not causes and gap > CACHE_TTL:
        causes.append("expired")
    return causes or ["unknown"]


def explain(store: Store, calls: list[dict[str, Any]]) -> None:
    """Mark each call `cache_break` and, for a break, `cache_break_cause` (see break_causes)."""
    warm_of = break_from(calls)
    pairs = [(calls[warm], call) for warm, call in zip(warm_of, calls, strict=True) if warm is not None]
    inputs: dict[str, Any] = {}
    if pairs:
        ids = sorted({c["trace_id"] for pair in pairs for c in pair})
        records: dict[str, dict[str, Any]] = {}
        refs: dict[str, Any] = {}
        for row in store.query(
            f"SELECT trace_id, record, input_refs FROM traces WHERE trace_id IN ({','.join('?' * len(ids))})", ids
        ):
            try:
                record = json.loads(row["record"])
                if row["input_refs"] is not None:
                    refs[row["trace_id"]] = json.loads(row["input_refs"])
            except ValueError:
                continue
            if isinstance(record, dict):
                records[row["trace_id"]] = record
        split = [k for k in refs if k in records]
        blobs.fill_inputs(store, [records[k] for k in split], [refs[k] for k in split])  # inputs kept as blocks
        inputs = {k: record.get("input") for k, record in records.items()}
    for call, warm in zip(calls, warm_of, strict=True):
        call["cache_break"] = warm is not None
        if warm is not None:
            before = calls[warm]
            gap = float(call["start_time"]) - float(before.get("end_time") or before["start_time"])
            call["cache_break_cause"] = break_causes(inputs.get(before["trace_id"]), inputs.get(call["trace_id"]), gap)
