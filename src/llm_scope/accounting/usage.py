"""Usage from each wire format's own fields, normalised into one `Usage`."""

from __future__ import annotations

from typing import Any

from ..types import CallRecord, Usage


def _int(value: Any) -> int:
    return value if type(value) is int and value > 0 else 0  # not bool (an int subclass), not floats


def openai_usage(raw: Any) -> Usage:
    """OpenAI chat-completions `usage` (also what LiteLLM emits for translated providers)."""
    if not isinstance(raw, dict):
        return Usage()
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    inp = _int(raw.get("prompt_tokens"))
    out = _int(raw.get("completion_tokens"))
    return Usage(
        input=inp,
        output=out,
        total=_int(raw.get("total_tokens")) or inp + out,
        cache_read=_int(prompt_details.get("cached_tokens")) or _int(raw.get("cache_read_input_tokens")),
        cache_write=_int(raw.get("cache_creation_input_tokens")),
        reasoning=_int(completion_details.get("reasoning_tokens")),
    )


def anthropic_usage(raw: Any) -> Usage:
    """Anthropic `usage`: input_tokens excludes cache reads/writes, so the total adds them back."""
    if not isinstance(raw, dict):
        return Usage()
    inp = _int(raw.get("input_tokens"))
    read = _int(raw.get("cache_read_input_tokens"))
    write = _int(raw.get("cache_creation_input_tokens"))
    out = _int(raw.get("output_tokens"))
    total_in = inp + read + write
    # `cache_creation` splits the writes by lifetime (ephemeral_5m / ephemeral_1h), priced differently.
    split = raw.get("cache_creation")
    write_1h = min(_int(split.get("ephemeral_1h_input_tokens")), write) if isinstance(split, dict) else 0
    return Usage(
        input=total_in, output=out, total=total_in + out, cache_read=read, cache_write=write, cache_write_1h=write_1h
    )


def usage_known(record: CallRecord) -> bool:
    """Whether the record's token counts are facts (zeros included) or unknown.

    Reported usage is known. No usage on a success means the upstream reported none: unknown. A call the
    upstream refused or failed before answering billed nothing, so its zeros are facts; but a stream that broke
    off or was cancelled after it started, a timeout or a client that went away may well have been billed, and
    without a report its usage is unknown, never 0 (Langfuse then estimates it; the store keeps NULL).
    """
    usage = record.usage
    return bool(usage.input or usage.output or usage.total) or refused_before_answer(record)


def refused_before_answer(record: CallRecord) -> bool:
    """A failure the upstream (or the gateway) answered before any token: nothing was billed."""
    return (
        record.is_error
        and record.completion_start_time is None
        and record.status_code not in (499, 504)
        and record.error_type != "client_disconnected"
    )


def merge(a: Usage, b: Usage) -> Usage:
    """Combine partial reports (Anthropic streams send input at start and output at the end)."""
    return Usage(
        input=b.input or a.input,
        output=b.output or a.output,
        total=max(b.total, a.total, (b.input or a.input) + (b.output or a.output)),
        cache_read=b.cache_read or a.cache_read,
        cache_write=b.cache_write or a.cache_write,
        reasoning=b.reasoning or a.reasoning,
        cache_write_1h=b.cache_write_1h or a.cache_write_1h,
    )


def responses_usage(raw: Any) -> Usage:
    """OpenAI Responses API `usage` (input/output naming, details objects)."""
    if not isinstance(raw, dict):
        return Usage()
    inp, out = _int(raw.get("input_tokens")), _int(raw.get("output_tokens"))
    details = raw.get("input_tokens_details") or {}
    return Usage(
        input=inp,
        output=out,
        total=_int(raw.get("total_tokens")) or inp + out,
        cache_read=_int(details.get("cached_tokens")),
        # OpenAI bills no cache writes; LiteLLM's translation of a provider that does (Anthropic, Bedrock) counts
        # them in input_tokens and names them here.
        cache_write=_int(details.get("cache_write_tokens")),
        reasoning=_int((raw.get("output_tokens_details") or {}).get("reasoning_tokens")),
    )
