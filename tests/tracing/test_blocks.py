"""An input as blocks with keys: joined back, it is exactly the whole input's JSON, for the store and exporters.

Generated inputs in the shapes the APIs send (a list of messages; Anthropic's dict of messages, system and
tools; a plain string), through the same encoders the store and the exporters use, compared byte for byte.
"""

from __future__ import annotations

import copy
import json
from hashlib import sha256
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from llm_scope import jsoncodec
from llm_scope.tracing import blocks
from llm_scope.tracing.blobs import stored_row
from llm_scope.tracing.blocks import BlockList, with_refs
from llm_scope.tracing.callfacts import request_digest
from llm_scope.tracing.genai import GenAIEncoder
from llm_scope.tracing.inputruns import InputRuns
from llm_scope.tracing.otlp import RecordEncoder, _dumps, _json
from llm_scope.tracing.protowire import key_field, string_attribute
from llm_scope.tracing.protowire import text as utf8
from llm_scope.tracing.screen import CleanBlocks
from llm_scope.tracing.splice import raw_of
from llm_scope.types import CallRecord

SECRET = "sk-proj-" + "Q9w8E7r6" * 5
text = st.lists(st.sampled_from(["a", "é", "☕", "\n", '"', "\\", "sk-", "\x00", " "]), max_size=8).map("".join)
# Finite floats: an input holding both an integer past 64 bits and an infinity (non-standard JSON a client
# would have to send) is stored with the infinity as null in its block but as Infinity when stored whole.
leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
    | st.just(SECRET)
)
value = st.recursive(leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3))
block = st.dictionaries(st.sampled_from(["role", "content", "name", "tool_calls"]), value, max_size=4) | value
inputs = (
    st.lists(block, max_size=6)
    | st.fixed_dictionaries(
        {"messages": st.lists(block, max_size=5)}, optional={"system": block, "tools": st.lists(block, max_size=3)}
    )
    | text
)


@settings(max_examples=300, deadline=None)
@given(inputs)
def test_blocks_join_to_the_whole_inputs_json(raw: Any) -> None:
    carried = with_refs(copy.deepcopy(raw))
    assert carried == raw
    cache = InputRuns(_dumps, block_budget=64, run_budget=64)  # tiny budgets: blocks drop out and come back
    key = key_field("langfuse.observation.input")
    for _ in range(2):  # encoded, then from the cache: the exporters' attribute of the input
        attr = cache.attribute(key, carried)
        assert (attr if type(attr) is bytes else raw_of(attr)) == string_attribute(key, utf8(_json(raw)))
    refs = blocks.refs_of(carried)
    stored = {key: jsoncodec.dumps_str(b) for key, b in zip(blocks.flat(refs), blocks.blocks(carried), strict=True)}
    assert json.loads(blocks.assemble(refs, stored.__getitem__)) == json.loads(jsoncodec.dumps_str(raw))


@settings(max_examples=200, deadline=None)
@given(inputs)
def test_the_screens_digests_are_the_keys_of_the_blocks_as_stored(raw: Any) -> None:
    """Reusing the screen's hashes gives the keys hashing the scrubbed blocks anew gives; none of a secret."""
    digests: list[bytes | None] = []
    scrubbed = CleanBlocks().scrub_input(copy.deepcopy(raw), (SECRET,), digests)
    carried = with_refs(scrubbed, digests)
    assert blocks.refs_of(carried) == blocks.refs_of(copy.deepcopy(scrubbed))
    raw_keys = {blocks.key_of(blocks.block_digest(b)) for b in blocks.blocks(raw) if SECRET in json.dumps(b)}
    assert not raw_keys & set(blocks.flat(blocks.refs_of(carried)))


def test_spans_of_an_input_with_keys_are_the_spans_of_the_plain_input() -> None:
    messages = [{"role": "system", "content": "Be brief. é ☕ " * 50}, {"role": "user", "content": "hi"}]
    anthropic = {"system": "Be brief.", "messages": messages[1:], "tools": [{"name": "read", "x": 1.5}]}
    for raw in (messages, anthropic):
        plain = CallRecord(trace_id="ab" * 16, route="chat_completion", start_time=1.0, end_time=2.0, input=raw)
        keyed = copy.copy(plain)
        keyed.input = with_refs(copy.deepcopy(raw))
        assert isinstance(keyed.input, BlockList) == isinstance(raw, list)
        langfuse = RecordEncoder(environment="default", release="1")
        genai = GenAIEncoder(service_name="s", version="1", content=True)
        for _ in range(2):  # the second time from the encoders' caches
            assert langfuse.record(keyed) == RecordEncoder(environment="default", release="1").record(plain)
            assert genai.record(keyed) == GenAIEncoder(service_name="s", version="1", content=True).record(plain)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.dictionaries(st.sampled_from(["role", "content"]), text, min_size=1), min_size=1, max_size=6)
    | st.fixed_dictionaries(
        {"messages": st.lists(st.dictionaries(text, text, max_size=2), max_size=5), "system": text},
        optional={"tools": st.lists(text, max_size=3)},
    ),
    st.data(),
)
def test_a_call_stores_exactly_its_blocks_not_written_lately_each_under_its_own_key(value: Any, data: Any) -> None:
    value = with_refs(value)
    keys = blocks.flat(value.refs)
    by_key = {key: jsoncodec.dumps_str(block) for key, block in zip(keys, blocks.blocks(value), strict=True)}
    written = data.draw(st.sets(st.sampled_from(keys)))  # whatever this writer wrote lately, new ones in any place
    record = CallRecord("ab" * 16, "chat_completion", 1.0, input=value)  # carrying refs: never kept inline
    pending: dict[str, str] = {}
    _, refs = stored_row(record, pending, dict.fromkeys(written, 1.0))
    assert pending == {key: body for key, body in by_key.items() if key not in written}
    assert refs == jsoncodec.dumps_str(value.refs)
    everything: dict[str, str] = {}
    stored_row(record, everything)  # nothing skipped: every block
    assert everything == by_key


def test_the_request_digest_of_an_input_read_from_bytes_is_its_blocks_digests_hashed_as_before() -> None:
    value = BlockList([{"role": "user", "content": "hi"}, {"role": "tool", "content": "x"}])
    value.digests = [sha256(b"one").digest(), sha256(b"two").digest()]
    parts = [d.hex() for d in value.digests]  # the stored form: re-sends are found against older rows too
    assert request_digest(value) == sha256(b"digests:" + jsoncodec.dumps(parts)).hexdigest()[:24]
    value.digests = [value.digests[0], None]  # a block with no digest is digested by its JSON
    parts = [parts[0], jsoncodec.dumps_str(value[1])]
    assert request_digest(value) == sha256(b"digests:" + jsoncodec.dumps(parts)).hexdigest()[:24]
