"""Per-call session facts, table-tested on the shapes the tools send and the gateway records: tool calls by
name from each API family's answer (as the taps assemble streams), and the repository and branch from Claude
Code's environment block and Codex's environment context; nothing when they are not there."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llm_scope.apis.chat import summarize_sse
from llm_scope.apis.messages import summarize_anthropic_events
from llm_scope.tracing.callfacts import note, repo_and_branch, request_digest, tool_calls
from llm_scope.types import CallRecord

# Claude Code 2.x's request, trimmed to the parts that matter here: the system blocks as it sends them (the
# environment block, then gitStatus at the end), and the user's first message with its system reminders.
CLAUDE_SYSTEM = [
    {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
    {
        "type": "text",
        "text": "\nYou are an interactive CLI tool that helps users with software engineering tasks. ...\n\n"
        "Here is useful information about the environment you are running in:\n<env>\n"
        "Working directory: /home/ana/src/llm-scope\nIs directory a git repo: Yes\nPlatform: linux\n"
        "OS Version: Linux 6.8.0-45-generic\nToday's date: 2025-10-02\n</env>\n"
        "You are powered by the model named Sonnet 4.5. The exact model ID is claude-sonnet-4-5-20250929.\n\n"
        "gitStatus: This is the git status at the start of the conversation. Note that this status is a "
        "snapshot in time, and will not update during the conversation.\nCurrent branch: feat/sessions-17\n\n"
        "Main branch (you will usually use this for PRs): main\n\nStatus:\nM src/llm_scope/tracing/insight.py\n\n"
        "Recent commits:\n8b770dc docs/TRACING.md: the client is a trace tag",
        "cache_control": {"type": "ephemeral"},
    },
]
CLAUDE_INPUT = {
    "messages": [
        {
            "role": "user",
            "content": [
                {
                    "type": "text",
                    "text": "<system-reminder>\nAs you answer the user's questions, ...</system-reminder>",
                },
                {"type": "text", "text": "add tool counts to the sessions view"},
            ],
        }
    ],
    "system": CLAUDE_SYSTEM,
    "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
}
# Codex 0.4x on /v1/responses: instructions, then AGENTS.md and the environment context as user items.
CODEX_INPUT = {
    "input": [
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "# AGENTS.md instructions for /Users/bo/work/gateway\n..."}],
        },
        {
            "type": "message",
            "role": "user",
            "content": [
                {
                    "type": "input_text",
                    "text": "<environment_context>\n  <cwd>/Users/bo/work/gateway</cwd>\n  <approval_policy>on-request"
                    "</approval_policy>\n  <sandbox_mode>workspace-write</sandbox_mode>\n  <network_access>restricted"
                    "</network_access>\n  <shell>zsh</shell>\n</environment_context>",
                }
            ],
        },
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "fix the flaky test"}]},
    ],
    "instructions": "You are Codex, based on GPT-5. You are running as a coding agent in the Codex CLI ...",
}


def _sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def _delta(**delta: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta}]}


CHAT_STREAM = summarize_sse(
    _sse(
        _delta(
            role="assistant", tool_calls=[{"index": 0, "id": "c1", "function": {"name": "read_file", "arguments": ""}}]
        ),
        _delta(tool_calls=[{"index": 0, "function": {"arguments": '{"path":"a.py"}'}}]),
        _delta(tool_calls=[{"index": 1, "id": "c2", "function": {"name": "read_file", "arguments": "{}"}}]),
        _delta(tool_calls=[{"index": 2, "id": "c3", "function": {"name": "run", "arguments": "{}"}}]),
    )
).output
ANTHROPIC_STREAM = summarize_anthropic_events(
    iter(
        [
            {"type": "message_start", "message": {"usage": {"input_tokens": 5}}},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Launching"}},
            {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "name": "Task"}},
            {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}},
            {"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "name": "Bash"}},
            {"type": "content_block_start", "index": 3, "content_block": {"type": "tool_use", "name": "Bash"}},
        ]
    )
).output


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ({"role": "assistant", "content": "hi"}, None),
        (None, None),
        (
            {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "get_weather"}}]},
            {"get_weather": 1},
        ),
        (CHAT_STREAM, {"read_file": 2, "run": 1}),
        (ANTHROPIC_STREAM, {"Task": 1, "Bash": 2}),
        ({"role": "assistant", "content": [{"type": "server_tool_use", "name": "web_search"}]}, {"web_search": 1}),
        (
            [  # Responses output items, Codex's shapes among them
                {"type": "reasoning", "summary": []},
                {"type": "function_call", "name": "shell", "arguments": "{}", "call_id": "a"},
                {"type": "custom_tool_call", "name": "apply_patch", "input": "*** Begin Patch"},
                {"type": "function_call", "name": "shell", "arguments": "{}", "call_id": "b"},
                {"type": "web_search_call", "status": "completed"},
                {"type": "message", "content": [{"type": "output_text", "text": "done"}]},
            ],
            {"shell": 2, "apply_patch": 1, "web_search": 1},
        ),
        ({"embeddings": 2, "dimensions": 8}, None),
    ],
)
def test_tool_calls_by_name_from_every_answer_shape(output: Any, expected: dict[str, int] | None) -> None:
    assert tool_calls(output) == expected


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (CLAUDE_INPUT, ("llm-scope", "feat/sessions-17")),
        (CODEX_INPUT, ("gateway", None)),  # Codex states no branch: none is guessed
        ({"messages": [{"role": "user", "content": "Working directory: /tmp/x"}]}, (None, None)),  # not in <env>
        ({"system": "<env>\nWorking directory: C:\\Users\\kim\\repos\\shop\\\n</env>", "messages": []}, ("shop", None)),
        ({"system": "gitStatus: ...\nCurrent branch: main\n", "messages": []}, (None, "main")),
        ([{"role": "user", "content": "hello"}], (None, None)),
        (None, (None, None)),
        ("<environment_context><cwd>/srv/app</cwd></environment_context>", ("app", None)),
    ],
)
def test_repo_and_branch_only_as_the_tool_states_them(content: Any, expected: tuple[str | None, str | None]) -> None:
    assert repo_and_branch(content) == expected


def test_note_fills_the_facts_and_the_repo_only_when_asked() -> None:
    record = CallRecord(
        trace_id="a" * 32, route="messages", start_time=1.0, input=CLAUDE_INPUT, output=ANTHROPIC_STREAM
    )
    note(record)
    assert (record.tool_calls, record.repo, record.branch) == ({"Task": 1, "Bash": 2}, None, None)
    assert record.request_digest == request_digest(json.loads(json.dumps(CLAUDE_INPUT)))  # the content, not the object
    note(record, repo=True)
    assert (record.repo, record.branch) == ("llm-scope", "feat/sessions-17")
    other = {**CLAUDE_INPUT, "messages": [{"role": "user", "content": "something else"}]}
    assert request_digest(other) != record.request_digest and request_digest(None) is None
