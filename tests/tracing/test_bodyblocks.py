"""A large body's input read from its bytes, block by block: exactly what parsing the body whole gives, for
every family and any JSON layout, with blocks seen before found rather than parsed, an edited block read anew,
and a secret in a block found before still scrubbed on every call that carries it, through to the trace API."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from llm_scope.accounting.redact import REDACTED
from llm_scope.apis import FAMILIES, by_name
from llm_scope.tracing import blocks
from llm_scope.tracing.bodyblocks import PREFIX, BodyBlocks
from llm_scope.tracing.callfacts import request_digest
from llm_scope.tracing.records import enrich
from llm_scope.tracing.screen import CleanBlocks
from llm_scope.types import CallRecord, RawInput
from tests.conftest import UPSTREAM_KEY
from tests.gateway_server import GatewayServer

SECRET = "sk-proj-" + "Q9w8E7r6" * 5
LONG = "x = 1\n" * (PREFIX // 4)  # a tool result long enough to be kept
text = st.lists(st.sampled_from(["a", "é", "☕", "\n", '"', "\\", "\x00", " ", LONG, "sk-"]), max_size=6).map("".join)
leaf = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | text
value = st.recursive(leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3))
message = st.fixed_dictionaries({"role": st.sampled_from(["user", "tool"]), "content": value})
body = st.fixed_dictionaries(
    {"model": st.just("m"), "messages": st.lists(message | value, max_size=5)},
    optional={"system": value, "tools": st.lists(value, max_size=3), "input": value, "instructions": text},
)
layout = st.sampled_from([(", ", ": "), (",", ":"), (" ,\n ", " :\t")])


def read(cache: BodyBlocks, family: str, data: bytes) -> Any:
    return cache.input_of(RawInput(data, family))


@settings(max_examples=300, deadline=None)
@given(body, layout, st.booleans(), st.sampled_from(["chat", "messages", "responses", "embeddings"]))
def test_the_input_read_from_bytes_is_the_input_of_the_parsed_body(
    data: dict[str, Any], separators: tuple[str, str], ascii_only: bool, family: str
) -> None:
    raw = json.dumps(data, separators=separators, ensure_ascii=ascii_only).encode()
    expected = by_name(FAMILIES)[family].input_of(json.loads(raw))  # type: ignore[index]
    cache = BodyBlocks(budget=4 * PREFIX)  # small: blocks drop out and come back
    for _ in range(3):  # parsed, then found
        got = read(cache, family, raw)
        assert got == expected and json.dumps(got) == json.dumps(expected)
        if isinstance(got, list | dict):
            assert len(got.digests) == len(list(blocks.blocks(got)))  # type: ignore[union-attr]


def conversation(turns: int, edit: int | None = None) -> bytes:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "Be brief. " * 100}]
    for turn in range(turns):
        content = f"turn {turn}: " + LONG
        if turn == edit:
            content = content.replace("x = 1", "x = 2", 1)
        messages.append({"role": "user", "content": content})
    return json.dumps({"model": "m", "messages": messages, "max_tokens": 9}).encode()


def test_blocks_seen_before_are_found_and_an_edited_one_is_read_anew() -> None:
    cache = BodyBlocks()
    first = read(cache, "chat", conversation(3))
    assert cache.hits == 0 and len(cache) == 4
    second = read(cache, "chat", conversation(4))
    assert cache.hits == 4 and second[:4] == first and second[1] is first[1]  # the same value, not parsed again
    assert second.digests[:4] == first.digests and None not in second.digests
    edited = read(cache, "chat", conversation(4, edit=1))  # the client rewrote an earlier turn
    assert edited == json.loads(conversation(4, edit=1))["messages"]
    assert edited[2]["content"].startswith("turn 1: x = 2") and edited.digests[2] != second.digests[2]
    assert edited.digests[1] == second.digests[1] and edited.digests[3:] == second.digests[3:]


def test_a_conversations_messages_so_far_are_found_in_one_run_and_a_changed_one_breaks_it() -> None:
    cache = BodyBlocks()
    read(cache, "chat", conversation(5))
    hits = cache.hits
    longer = read(cache, "chat", conversation(6))  # the system prompt and five turns as a run, then one parsed
    assert cache.hits == hits + 6 and longer == json.loads(conversation(6))["messages"]
    for edit in (0, 4):  # a turn rewritten at the start or the end of the run: read as sent, nothing stale
        edited = read(cache, "chat", conversation(6, edit=edit))
        assert edited == json.loads(conversation(6, edit=edit))["messages"]
    shorter = read(cache, "chat", conversation(2))  # a run longer than the array does not match
    assert shorter == json.loads(conversation(2))["messages"]


def test_conversations_that_start_alike_each_find_their_own_run() -> None:
    def talk(who: str, turns: int) -> bytes:  # the same system prompt, then each its own messages
        body = json.loads(conversation(turns))
        for message in body["messages"][1:]:
            message["content"] = who + message["content"]
        return json.dumps(body).encode()

    cache = BodyBlocks()
    for turns in range(1, 6):  # interleaved, as a gateway's clients are: each call is its last one's run + one
        for who in "abcd":
            hits = cache.hits
            got = read(cache, "chat", talk(who, turns))
            assert got == json.loads(talk(who, turns))["messages"]
            expected = turns if turns > 1 else int(who != "a")  # its run so far; at first the prompt, once seen
            assert cache.hits - hits == expected


def test_what_cannot_be_read_block_by_block_is_read_whole_or_unknown() -> None:
    cache = BodyBlocks()
    assert read(cache, "chat", b'{"model": "m", "messages": [1, 2] } ') == [1, 2]
    assert read(cache, "chat", '{"messages": ["é"]}'.encode("utf-16")) == ["é"]  # as the gateway read it
    assert read(cache, "chat", b'{"messages": [1') is None  # not even the gateway reads it: unknown
    assert read(cache, "chat", b'{"messages": [NaN]}')[0] != 0  # the standard library's extension, as parsed
    assert read(cache, "nonesuch", b'{"a": [1]}') == {"a": [1]}  # a family unknown here: the whole body


def test_the_request_digest_of_a_body_read_from_bytes_is_the_same_for_the_same_body() -> None:
    one, two = BodyBlocks(), BodyBlocks()
    data = conversation(3)
    assert request_digest(read(one, "chat", data)) == request_digest(read(one, "chat", data))
    assert request_digest(read(one, "chat", data)) == request_digest(read(two, "chat", data))
    assert request_digest(read(one, "chat", conversation(3, edit=0))) != request_digest(read(one, "chat", data))


def scrubbed(cache: BodyBlocks, clean: CleanBlocks, data: bytes) -> Any:
    record = CallRecord(trace_id="a" * 32, route="chat_completion", start_time=1.0, input=read(cache, "chat", data))
    enrich(record, prices_for=lambda r: None, secrets=(SECRET,), trace_content=True, clean=clean)
    return record.input


def test_a_secret_in_a_block_found_before_is_scrubbed_on_every_call() -> None:
    cache, clean = BodyBlocks(), CleanBlocks()
    turns = [{"role": "user", "content": f"my key is {SECRET} " + LONG}, {"role": "user", "content": LONG}]
    for n in range(1, 4):
        data = json.dumps({"model": "m", "messages": [*turns, {"role": "user", "content": f"{n} " + LONG}]}).encode()
        stored = scrubbed(cache, clean, data)
        assert SECRET not in json.dumps(stored) and REDACTED in stored[0]["content"]
        assert stored[1:] == json.loads(data)["messages"][1:]
        refs = blocks.refs_of(stored)
        assert refs[0] == blocks.key_of(blocks.block_digest(stored[0]))  # keyed by what is stored, not the secret
    assert cache.hits >= 4 and clean.hits >= 2  # the clean blocks were found and passed on their digests


def test_a_coding_agents_calls_reach_the_trace_api_whole_and_scrubbed(gateway: GatewayServer) -> None:
    history: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a coding agent. " * 400},  # ~10 KB: the body goes over as bytes
        {"role": "user", "content": f"deploy with {UPSTREAM_KEY} please"},
    ]
    with gateway.client() as http:
        for turn in range(3):
            history.append({"role": "user", "content": f"turn {turn}: " + LONG})
            body = {"model": "gpt-fake", "messages": history}
            r = http.post("/v1/chat/completions", json=body)
            assert r.status_code == 200, r.text
            trace = http.get(f"/api/traces/{r.headers['x-trace-id']}").json()
            stored = trace["input"]
            assert UPSTREAM_KEY not in json.dumps(trace) and REDACTED in stored[1]["content"]
            assert [stored[0], *stored[2:]] == [history[0], *history[2:]]  # the whole conversation, every call
