"""Cache breaks and their causes, as tables, and explained over a real store from the turns' stored input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llm_scope.tracing.cachebreaks import break_causes, cache_breaks, explain
from llm_scope.tracing.store import Store
from llm_scope.types import CallRecord, Usage

SONNET = {"resolved_model": "sonnet"}


@pytest.mark.parametrize(
    ("turns", "expected"),
    [
        ([(0, 5000), (4000, 5200), (4100, 5400)], [False, False, False]),  # warm and staying warm
        ([(0, 5000), (4000, 5200), (0, 5400)], [False, False, True]),  # reads fall to 0 after a warm turn
        ([(0, 5000), (4000, 5200), (300, 5400)], [False, False, True]),  # ~0: under a tenth of before
        ([(0, 5000), (4000, 5200), (0, 900)], [False, False, False]),  # a smaller prompt (a subagent): no break
        ([(0, 900), (500, 1000), (0, 1100)], [False, False, False]),  # never warm enough to count
        ([(0, 5000), (4000, 5200), (0, 0), (4100, 5400)], [False, False, False, False]),  # an error in between
    ],
)
def test_cache_breaks(turns: list[tuple[int, int]], expected: list[bool]) -> None:
    rows = [{**SONNET, "cache_read_tokens": read, "input_tokens": prompt} for read, prompt in turns]
    assert cache_breaks(rows) == expected


def test_each_model_has_its_own_cache() -> None:
    rows = [
        {"resolved_model": "sonnet", "cache_read_tokens": 4000, "input_tokens": 5000},
        {"resolved_model": "haiku", "cache_read_tokens": 0, "input_tokens": 6000},  # haiku's first call
        {"resolved_model": "sonnet", "cache_read_tokens": 4200, "input_tokens": 5200},
    ]
    assert cache_breaks(rows) == [False, False, False]


TOOLS = [{"name": "Read", "input_schema": {"type": "object"}}]
SYSTEM = [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}]
M1 = {"role": "user", "content": "read handle.py"}
M2 = {"role": "assistant", "content": "done"}
M3 = {"role": "user", "content": "now test it"}


def messages(*items: dict[str, Any], tools: Any = TOOLS, system: Any = SYSTEM) -> dict[str, Any]:
    return {"messages": list(items), "tools": tools, "system": system}


@pytest.mark.parametrize(
    ("before", "after", "gap", "expected"),
    [
        (messages(M1), messages(M1, M2, M3), 10, ["unknown"]),  # the prefix is intact and the cache fresh
        (messages(M1), messages(M1, M2, M3), 900, ["expired"]),  # intact, but 15 minutes later
        (messages(M1), messages(M1, M2, M3, tools=[*TOOLS, {"name": "Bash"}]), 10, ["tools"]),
        (messages(M1), messages(M1, M2, M3, system=[{"type": "text", "text": "Today is Friday."}]), 10, ["system"]),
        (messages(M1, M2), messages({"role": "user", "content": "(summary)"}, M3), 10, ["messages"]),  # compacted
        (messages(M1, M2), messages(M1), 10, ["messages"]),  # dropped
        # Moving the cache_control marker to the newest block changes no cached token.
        (messages({**M1, "cache_control": {"type": "ephemeral"}}), messages(M1, M2, M3), 10, ["unknown"]),
        ({"input": [M1], "instructions": "be Codex"}, {"input": [M1, M2], "instructions": "be terse"}, 10, ["system"]),
        ([M1], [M1, M2], 10, ["unknown"]),  # chat without tools or system: a bare list of messages
        (None, None, 10, ["unknown"]),  # content tracing off: nothing to compare
        (None, None, 900, ["expired"]),
    ],
)
def test_break_causes(before: Any, after: Any, gap: float, expected: list[str]) -> None:
    assert break_causes(before, after, gap) == expected


def test_explain_reads_the_two_turns_of_each_break_from_the_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    start = 1_790_000_000.0
    shapes = [  # (cache reads, prompt, input, seconds after the previous turn)
        (0, 5000, messages(M1), 0),
        (4000, 5200, messages(M1, M2), 5),
        (0, 5400, messages(M1, M2, M3, system=[{"type": "text", "text": "new"}]), 5),  # system changed
        (5000, 5600, messages(M1, M2, M3), 5),
        (0, 5800, messages(M1, M2, M3), 1200),  # idle 20 minutes: expired
    ]
    records, calls = [], []
    for n, (read, prompt, given, gap) in enumerate(shapes):
        start += gap
        record = CallRecord(
            trace_id=f"{n:032x}", route="messages", start_time=start, end_time=start, resolved_model="sonnet",
            input=given, usage=Usage(input=prompt, output=10, total=prompt + 10, cache_read=read),
        )  # fmt: skip
        records.append(record)
        calls.append({"trace_id": record.trace_id, "start_time": start, "end_time": start, **SONNET,
                      "cache_read_tokens": read, "input_tokens": prompt})  # fmt: skip
    store.write(records, outbox=False, max_outbox=0)
    explain(store, calls)
    assert [c["cache_break"] for c in calls] == [False, False, True, False, True]
    assert [c.get("cache_break_cause") for c in calls] == [None, None, ["system"], None, ["expired"]]
