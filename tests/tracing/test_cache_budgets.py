"""The trace helper's caches stay within their budgets in real bytes, and reads past their evictions are right.

Each cache is fed more than its budget of real conversations; its own count must stay under the bound, the
objects it really holds (walked by `memprobe.deep_size`) must not exceed that count (so the count bounds
memory, rather than characters or entries), and a call read after its blocks were evicted must still give
the full input exactly: correctness never depends on what a cache kept.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from typing import Any

from llm_scope.tracing import blobs, screen
from llm_scope.tracing.blocks import key_of, with_refs
from llm_scope.tracing.bodyblocks import BodyBlocks
from llm_scope.tracing.inputruns import InputRuns
from llm_scope.tracing.memprobe import deep_size
from llm_scope.tracing.otlp import _dumps, _json
from llm_scope.tracing.protowire import key_field, string_attribute
from llm_scope.tracing.protowire import text as utf8
from llm_scope.tracing.screen import CleanBlocks
from llm_scope.tracing.splice import raw_of
from llm_scope.types import RawInput

KEY = key_field("langfuse.observation.input")


def conversation(c: int, turns: int) -> list[dict[str, Any]]:
    """Conversation c's messages: a system prompt and tool results of a few KB, distinct per conversation."""
    out: list[dict[str, Any]] = [{"role": "system", "content": f"conversation {c}: " + "house rules. " * 60}]
    for t in range(turns):
        out.append({"role": "tool", "content": [{"type": "text", "text": f"{c}.{t} " + "x = [1, 2]\n" * 150}]})
    return out


def held(obj: Any) -> int:
    """The bytes a cache's contents really take (the cache object itself aside)."""
    return deep_size(obj, set()) - sys.getsizeof(obj)


def test_body_blocks_stay_in_budget_and_read_right_after_eviction() -> None:
    budget = 600_000
    cache = BodyBlocks(budget=budget)
    for c in range(40):  # ~40 conversations of ~40 KB text (+ values): several times the budget
        for turns in range(1, 12, 5):
            body = json.dumps({"model": "m", "messages": conversation(c, turns)}).encode()
            assert cache.input_of(RawInput(body, "chat")) == conversation(c, turns)
            assert cache.size <= cache.block_budget or len(cache) == 1
            assert cache.run_size <= cache.run_budget or len(cache._runs) == 1
    assert cache.size + cache.run_size <= budget
    assert held(cache) <= cache.size + cache.run_size + 50_000  # the count covers what it holds (+ its dicts)
    first = json.dumps({"model": "m", "messages": conversation(0, 11)}).encode()
    assert cache.input_of(RawInput(first, "chat")) == conversation(0, 11)  # evicted long ago: parsed again


def test_input_runs_stay_in_budget_and_encode_right_after_eviction() -> None:
    cache = InputRuns(_dumps, block_budget=300_000, run_budget=600_000)
    keep = CleanBlocks()
    for c in range(40):
        for turns in range(1, 12, 5):
            value = conversation(c, turns)
            digests: list[bytes | None] = []
            clean = keep.scrub_input(copy.deepcopy(value), (), digests)
            attr = cache.attribute(KEY, with_refs(clean, digests))
            assert (attr if type(attr) is bytes else raw_of(attr)) == string_attribute(KEY, utf8(_json(value)))
            assert cache.size <= cache.block_budget or len(cache) == 1
            assert cache.run_size <= cache.run_budget or len(cache._runs) == 1
    assert held(cache) <= cache.size + cache.run_size + 50_000


def test_clean_blocks_hold_at_most_their_byte_budget() -> None:
    cache = CleanBlocks(limit=2_000)
    for c in range(3_000):  # more digests than the limit
        value = [{"role": "user", "content": f"message {c}"}]
        assert cache.scrub_input(value, ()) is value
    assert len(cache) == 2_000
    real = deep_size(cache._digests, set())  # the dict's table included: it is part of the cost
    assert real <= len(cache) * screen.DIGEST_BYTES  # DIGEST_BYTES is what a digest really costs
    assert held(cache) <= len(cache) * screen.DIGEST_BYTES + cache.run_size * screen.RUN_DIGEST_BYTES + 2_000
    assert screen.LIMIT * screen.DIGEST_BYTES + screen.RUN_LIMIT * screen.RUN_DIGEST_BYTES <= screen.BUDGET
    value = [{"role": "user", "content": "message 0 sk-proj-" + "Q9w8E7r6" * 5}]  # evicted, then a secret
    assert cache.scrub_input(value, ("sk-proj-" + "Q9w8E7r6" * 5,)) != value  # scrubbed, not passed


def test_block_writer_holds_at_most_its_byte_budget() -> None:
    writer = blobs.BlockWriter(limit=2_000)
    now = time.time()
    for start in range(0, 6_000, 500):
        writer.wrote([key_of(i.to_bytes(32, "big")) for i in range(start, start + 500)], now)
    assert len(writer) == 2_000
    trusted = writer.trusted(now)
    assert key_of((0).to_bytes(32, "big")) not in trusted  # the oldest out: written again, which is right
    assert deep_size(writer._written, set()) <= len(writer) * blobs.KEY_BYTES  # the dict's table included
    assert blobs.LIMIT * blobs.KEY_BYTES <= blobs.BUDGET
