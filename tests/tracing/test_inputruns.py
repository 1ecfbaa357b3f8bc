"""The input attribute joined from kept blocks and runs is the one encoded whole, call after call.

Conversations in every layout the API families send (a list of messages or Responses items; Anthropic's
dict of messages, system and tools) grow, branch, get an earlier message edited and carry a secret, and
each call's attribute and gzipped request are compared byte for byte with the plain encoding.
"""

from __future__ import annotations

import copy
import gzip
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from llm_scope.tracing.blocks import with_refs
from llm_scope.tracing.exporting import gzipped_chunks
from llm_scope.tracing.genai import GenAIEncoder
from llm_scope.tracing.inputruns import InputRuns
from llm_scope.tracing.otlp import RecordEncoder, _dumps, _json
from llm_scope.tracing.protowire import key_field, string_attribute
from llm_scope.tracing.protowire import text as utf8
from llm_scope.tracing.screen import CleanBlocks
from llm_scope.tracing.splice import SMALLEST, Piece, raw_of
from llm_scope.types import CallRecord

SECRET = "sk-proj-" + "Q9w8E7r6" * 5
KEY = key_field("langfuse.observation.input")
words = st.text(alphabet='ab é☕\n"\\\x00', max_size=40) | st.just(SECRET) | st.just("\ud800 lone")
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "tool"]), "content": words.map(lambda w: w * 20)}
)
# A session: each call is the last one's messages plus some, or with one of them edited, or a branch.
steps = st.lists(
    st.tuples(st.sampled_from(["grow", "edit", "branch", "same"]), st.lists(message, max_size=3), st.integers(0, 20)),
    max_size=8,
)
layouts = st.sampled_from(["list", "anthropic", "anthropic-no-system"])


def shaped(layout: str, messages: list[dict[str, Any]]) -> Any:
    if layout == "list":
        return list(messages)
    tools = [{"name": f"t{i}", "description": "reads a file " * 12} for i in range(3)]
    value: dict[str, Any] = {"messages": list(messages), "tools": tools}
    if layout == "anthropic":
        value = {"system": "Be brief. " * 20, **value}
    return value


def attribute_plain(value: Any) -> bytes:
    return string_attribute(KEY, utf8(_json(value)))


def calls(layout: str, first: list[dict[str, Any]], plan: list[tuple[str, list[dict[str, Any]], int]]) -> list[Any]:
    history = list(first)
    out = [shaped(layout, history)]
    for step, more, at in plan:
        if step == "grow":
            history = history + more
        elif step == "edit" and history:
            history = list(history)
            history[at % len(history)] = {"role": "user", "content": f"edited {at} " * 10}
        elif step == "branch":
            history = history[: at % (len(history) + 1)] + more
        out.append(shaped(layout, history))
    return out


@settings(max_examples=150, deadline=None)
@given(layouts, st.lists(message, min_size=1, max_size=4), steps, st.sampled_from([64, 4096, 1 << 22]))
def test_each_calls_attribute_is_the_whole_inputs_encoding(
    layout: str, first: list[dict[str, Any]], plan: list[tuple[str, list[dict[str, Any]], int]], budget: int
) -> None:
    cache = InputRuns(_dumps, block_budget=budget, run_budget=budget)  # small budgets: kept parts drop out
    screen = CleanBlocks()
    for raw in calls(layout, first, plan):
        digests: list[bytes | None] = []
        scrubbed = screen.scrub_input(copy.deepcopy(raw), (SECRET,), digests)
        carried = with_refs(scrubbed, digests)
        attr = cache.attribute(KEY, carried)
        joined = attr if type(attr) is bytes else raw_of(attr)
        assert joined == attribute_plain(scrubbed)
        assert SECRET.encode() not in joined  # a secret seen in an earlier call is still scrubbed
        assert cache.size <= budget or len(cache) == 1  # bounded (one block kept whatever its size)
        assert cache.run_size <= budget or len(cache._runs) == 1


def test_a_growing_conversation_encodes_and_compresses_only_its_new_messages() -> None:
    cache = InputRuns(_dumps)
    turns = [{"role": "system", "content": "house rules " * 100}]
    for n in range(10):
        turns.append({"role": "tool", "content": f"turn {n}: " + "x = 1\n" * 100})
        value = with_refs(list(turns))
        hits = cache.hits
        parts = cache.parts(value)
        assert raw_of(parts) == utf8(_dumps(turns))
        runs = [p for p in parts if type(p) is Piece]
        assert len(runs) == 1  # the messages as one run
        assert cache.hits - hits == (0 if n == 0 else len(turns) - 1)  # all but the new one, kept
        assert len(cache._runs) == 1  # the run extended replaces the last call's
    assert len(cache) == len(turns)  # each message encoded once


def test_an_edited_earlier_message_is_a_new_block_and_a_new_run() -> None:
    cache = InputRuns(_dumps)
    turns = [{"role": "user", "content": f"turn {n} " * 40} for n in range(4)]
    cache.parts(with_refs(list(turns)))
    edited = [turns[0], {"role": "user", "content": "changed " * 40}, *turns[2:]]
    assert raw_of(cache.parts(with_refs(edited))) == utf8(_dumps(edited))
    assert len(cache) == 5  # the edit encoded; the others kept


def test_a_small_input_goes_in_the_stream_not_as_a_piece() -> None:
    cache = InputRuns(_dumps)
    value = with_refs([{"role": "user", "content": "hi"}])
    parts = cache.parts(value)
    assert all(type(p) is bytes for p in parts) and len(raw_of(parts)) < SMALLEST


def records(n: int, messages: list[dict[str, Any]]) -> list[CallRecord]:
    out = []
    for i in range(n):
        value = with_refs(copy.deepcopy(messages[: i + 1]))
        out.append(CallRecord(trace_id=f"{i + 1:032x}", route="chat_completion", start_time=1.0, end_time=2.0))
        out[-1].input = value
    return out


def test_gzipped_requests_decode_to_the_plain_requests_for_both_exporters() -> None:
    messages = [{"role": "user", "content": f"turn {n}: " + "def f(): ☕\n" * 60} for n in range(12)]
    plain = records(12, messages)
    for record in plain:
        record.input = list(record.input)  # no refs: encoded whole
    langfuse = RecordEncoder(environment="default", release="1")
    genai = GenAIEncoder(service_name="s", version="1", content=True)
    for encoder, fresh in (
        (langfuse, RecordEncoder(environment="default", release="1")),
        (genai, GenAIEncoder(service_name="s", version="1", content=True)),
    ):
        for _ in range(2):  # the second time from the kept runs
            bodies = gzipped_chunks(
                records(12, messages), encoder.record_parts, encoder.request_parts, max_bytes=6000, label="t"
            )
            assert len(bodies) > 1  # split by size
            got = [gzip.decompress(body) for body in bodies]
            chunks, at = [], 0
            for body in got:  # each body is the plain request of the records it holds
                count = body.count(b"turn 0: ")
                chunks.append(fresh.request_parts([fresh.record_parts(r) for r in plain[at : at + count]]))
                at += count
            assert at == 12
            assert got == [raw_of(c) for c in chunks]
