"""The input screen that remembers clean messages: enrich with it must store exactly what scrubbing everything
stored, turn after turn of a conversation, whatever the secrets were and became."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from llm_scope.accounting.redact import REDACTED
from llm_scope.tracing.bodyblocks import BodyBlocks
from llm_scope.tracing.records import enrich, record_to_json
from llm_scope.tracing.screen import CleanBlocks
from llm_scope.types import CallRecord, RawInput

from .test_records import SECRETS, exhaustive_enrich, make, prices_for


def stored(record: CallRecord, secrets: list[str], clean: CleanBlocks | None) -> str:
    """The record's JSON as the store gets it: with `clean` (None: scrub everything, the reference)."""
    record = copy.deepcopy(record)
    if clean is None:
        exhaustive_enrich(record, secrets, True)
    else:
        enrich(record, prices_for=prices_for, secrets=secrets, trace_content=True, clean=clean)
    return json.dumps(dataclasses.asdict(record), default=str)  # escapes a lone surrogate, where the store's JSON fails


def turns(history: list[dict[str, Any]], shape: str) -> Any:
    system = "You are a coding agent. Follow the house rules.\n" * 20
    tools = [{"type": "function", "function": {"name": f"tool_{i}", "description": "Reads a file."}} for i in range(3)]
    if shape == "chat":
        return [{"role": "system", "content": system}, *history]
    return {"messages": history, "system": [{"type": "text", "text": system}], "tools": tools}


CONVERSATION = [
    {"role": "user", "content": "Fix the failing test in tests/test_app.py."},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "function": {"arguments": '{"p": "a"}'}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "x = 1\n" * 200},
    {"role": "user", "content": "Use my key sk-proj-Abc123_def456-GHI789jkl012 for the call."},  # a key shape
    {"role": "assistant", "content": "I will keep my task-list short."},  # a false alarm: "sk-" in "task-list"
    {"role": "tool", "content": f"env: UPSTREAM={SECRETS[0]}"},  # a configured secret
    {"role": "user", "content": "The deploy token is tok-live-7f3a9c, and headers follow.", "headers": {"Cookie": "a"}},
    {
        "role": "tool",
        "content": [{"type": "text", "text": "done"}, {"type": "text", "text": "Bearer abcdefghijklmnop"}],
    },
]


def test_a_growing_conversation_stores_what_exhaustive_scrubbing_stored() -> None:
    for shape in ("chat", "messages"):
        clean = CleanBlocks()
        for turn in range(1, len(CONVERSATION) + 1):
            # The secret set changes after turn 6: a message remembered clean before holds a secret now.
            secrets = SECRETS if turn <= 6 else [*SECRETS, "tok-live-7f3a9c", "task-list"]
            record = make(input=turns(CONVERSATION[:turn], shape))
            assert stored(record, secrets, clean) == stored(record, secrets, None), (shape, turn)
            assert stored(record, secrets, CleanBlocks()) == stored(record, secrets, None), (shape, turn)
        assert clean.hits > 0  # the earlier turns were passed on their digests, not screened again
        last = make(input=turns(CONVERSATION, shape))
        out = enrich(copy.deepcopy(last), prices_for=prices_for, secrets=[*SECRETS, "task-list"], trace_content=True)
        text = record_to_json(out)
        assert "sk-proj-Abc" not in text and SECRETS[0] not in text and "task-list" not in text and REDACTED in text


def test_clean_messages_are_passed_on_their_digest_and_left_alone() -> None:
    clean = CleanBlocks()
    first = make(input=turns(CONVERSATION[:3], "messages"))
    messages = first.input["messages"]
    enrich(first, prices_for=prices_for, secrets=SECRETS, trace_content=True, clean=clean)
    assert first.input["messages"] is messages and clean.hits == 0 and len(clean) == 7  # 3 messages, system, 3 tools
    again = make(input=turns(CONVERSATION[:5], "messages"))
    enrich(again, prices_for=prices_for, secrets=SECRETS, trace_content=True, clean=clean)
    assert clean.hits == 7  # the repeated blocks; the key-shaped message is scrubbed, the false alarm remembered
    assert again.input["messages"][3]["content"] == f"Use my key {REDACTED} for the call."
    assert len(clean) == 8
    enrich(
        make(input=turns(CONVERSATION[:5], "messages")),
        prices_for=prices_for,
        secrets=SECRETS,
        trace_content=True,
        clean=clean,
    )
    assert clean.hits == 7 + 8  # the message holding a key is never remembered
    enrich(
        make(input=turns(CONVERSATION[:2], "messages")),
        prices_for=prices_for,
        secrets=["other"],
        trace_content=True,
        clean=clean,
    )
    assert clean.hits == 15 and len(clean) == 6  # other secrets: every verdict before is forgotten


def test_the_memory_is_bounded_and_keeps_what_is_used() -> None:
    clean = CleanBlocks(limit=3)
    secrets = tuple(SECRETS)
    for text in ("a", "b", "c"):
        clean.scrub_input([text], secrets)
    clean.scrub_input(["a"], secrets)  # used again: the least recently used is now "b"
    clean.scrub_input(["d"], secrets)
    assert len(clean) == 3
    hits = clean.hits
    clean.scrub_input(["a", "c", "d"], secrets)
    assert clean.hits == hits + 3
    clean.scrub_input(["b"], secrets)
    assert clean.hits == hits + 3  # "b" was dropped


def test_what_the_screen_cannot_read_is_scrubbed() -> None:
    clean = CleanBlocks()
    lone = {"role": "user", "content": "\ud800 " + SECRETS[1]}  # a lone surrogate JSON encoding refuses
    out = clean.scrub_input([lone, {"Authorization": "x"}], tuple(SECRETS))
    assert out == [{"role": "user", "content": "\ud800 " + REDACTED}, {"Authorization": REDACTED}]
    assert clean.scrub_input({"api_key": "k", "messages": []}, ()) == {"api_key": REDACTED, "messages": []}
    assert clean.scrub_input("plain text", ()) == "plain text" and len(clean) == 1


PIECES = [
    "hello",
    "x = 1\n",
    "task-list",
    "sk-proj-Abc123_def456-GHI789jkl012",
    "AKIAABCDEFGHIJKLMNOP",
    "Bearer abcdefghijklmnop",
    "tok-live-7f3a9c",
    "ls-master",
    'q"uote',
    "\ud800",
]
SECRET_POOL = ["tok-live-7f3a9c", "ls-master", "x = 1", 'q"uote', "hello"]
texts = st.lists(st.sampled_from(PIECES), max_size=4).map(" ".join)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | texts,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["role", "content", "text", "password", "Cookie", "args"]), inner, max_size=3)
    ),
    max_leaves=8,
)
messages = st.lists(values, max_size=5)
inputs = messages | st.fixed_dictionaries({"messages": messages}, optional={"system": values, "tools": messages})


@settings(max_examples=300, deadline=None)
@given(
    calls=st.lists(
        st.tuples(inputs, st.lists(st.sampled_from(SECRET_POOL), max_size=2, unique=True)), min_size=1, max_size=6
    )
)
def test_cached_and_uncached_enrich_agree(calls: list[tuple[Any, list[str]]]) -> None:
    clean = CleanBlocks(limit=8)
    history: list[Any] = []
    for value, secrets in calls:
        # Each call repeats the ones before, as a conversation does, under secrets that may change.
        value = value + history if isinstance(value, list) else value
        history = value if isinstance(value, list) else history
        record = make(input=value, metadata={"tags": ["t"]})
        assert stored(record, secrets, clean) == stored(record, secrets, None)


def test_clean_runs_pass_a_conversations_repeated_blocks_and_screen_its_new_ones() -> None:
    """Read from the body's bytes, as the helper reads a coding agent's calls: the blocks come with digests,
    and an array whose blocks were all clean last call is passed as one run; a new block holding a secret is
    still scrubbed, and a change of secrets forgets every run."""
    bodies, clean = BodyBlocks(), CleanBlocks()
    history = [{"role": "system", "content": "house rules\n" * 40}]
    added = [{"role": "tool", "content": f"turn {n}: " + "x = 1\n" * 30} for n in range(4)]
    added += [
        {"role": "tool", "content": f"env: UPSTREAM={SECRETS[0]}"},
        {"role": "user", "content": "tok-live-7f3a9c"},
    ]
    added += [{"role": "user", "content": "and on"}]
    for turn, message in enumerate(added):
        history.append(message)
        secrets = SECRETS if turn < 5 else [*SECRETS, "tok-live-7f3a9c"]
        body = json.dumps({"model": "m", "messages": history}).encode()
        record = make(input=bodies.input_of(RawInput(body, "chat")))
        assert record.input.digests and None not in record.input.digests  # type: ignore[union-attr]
        run_hits = clean.hits
        got = stored(record, secrets, clean)
        assert got == stored(make(input=copy.deepcopy(history)), secrets, None), turn
        if 0 < turn < 5:
            assert clean.hits - run_hits == turn + 1  # the earlier messages, passed as one run
            # this call's run kept in place of the last call's; not one holding a secret (turn 4)
            assert clean.run_size == (turn + 2 if turn < 4 else turn + 1)
        assert (f"UPSTREAM={SECRETS[0]}" not in got and "tok-live-7f3a9c" not in got) or turn < 4
