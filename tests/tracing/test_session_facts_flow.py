"""A coding session's facts end to end: real calls through the gateway to the fake upstream, stored by the trace
helper and exported to Langfuse (a real OTLP receiver): tool calls by name, the subagent marker the tool sends,
the fallback session id in the stored row, the read API and the exported trace alike, and the repository and
branch only with LLM_SCOPE_SESSION_REPO on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.fakes.otlp_receiver import OtlpReceiver
from tests.fakes.upstream import FakeUpstream
from tests.http.test_clients import CLAUDE_CODE, CLAUDE_SESSION
from tests.tracing.test_callfacts import CLAUDE_SYSTEM
from tests.tracing.test_pipeline import TOOLS, spans_of, stored, traced_gateway

CLAUDE_TOOLS = [{"name": "Task", "input_schema": {"type": "object"}}]


def claude_turn(http: httpx.Client, *, subagent: bool = False, **body: Any) -> httpx.Response:
    headers = {**CLAUDE_CODE, "x-claude-code-session-id": CLAUDE_SESSION}
    if subagent:  # what Claude Code 2.1+ adds to the calls of an agent its Task/Agent tool started
        headers |= {"x-claude-code-agent-id": "a1b2c3", "x-claude-code-parent-agent-id": "main"}
    payload = {"model": "claude-fake", "max_tokens": 50, "system": CLAUDE_SYSTEM, "tools": CLAUDE_TOOLS, **body}
    payload.setdefault("messages", [{"role": "user", "content": "split the work"}])
    return http.post("/v1/messages", headers=headers, json=payload)


def test_tool_calls_subagents_and_the_fallback_session_reach_the_store_api_and_langfuse(
    tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver
) -> None:
    with traced_gateway(tmp_path, upstream, receiver) as gw, gw.client() as http:
        plain = {"model": "gpt-fake", "tools": TOOLS, "messages": [{"role": "user", "content": "weather?"}]}
        first = http.post("/v1/chat/completions", json=plain).headers["x-trace-id"]  # no session id sent
        second = http.post("/v1/chat/completions", json={**plain, "stream": True}).headers["x-trace-id"]
        assert claude_turn(http).status_code == 200
        assert claude_turn(http, subagent=True, stream=True).status_code == 200
        auto = "auto-" + first
        for trace_id in (first, second):
            assert spans_of(receiver, trace_id)["generation"]["attributes"]["session.id"] == auto
            assert stored(gw, trace_id)["session_id"] == auto
        sessions = {s["session_id"]: s for s in http.get("/api/sessions").json()["data"]}
        assert sessions[auto]["derived"] is True and sessions[auto]["calls"] == 2
        assert sessions[auto]["tool_calls"] == {"get_weather": 2}  # the stream's assembled answer counts too
        claude = sessions[CLAUDE_SESSION]
        assert claude["derived"] is False and claude["tool_calls"] == {"Task": 2}
        assert claude["subagent_calls"] == 1
        assert claude["repos"] == [] and claude["branches"] == []  # off by default: nothing stored
        turns = http.get(f"/api/sessions/{CLAUDE_SESSION}").json()["turns"]
        assert [t["subagent"] for t in turns] == [None, "agent"]
        assert [t["repo"] for t in turns] == [None, None]


def test_repository_and_branch_when_the_setting_is_on(
    tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver
) -> None:
    with traced_gateway(tmp_path, upstream, receiver, session_repo=True) as gw, gw.client() as http:
        assert claude_turn(http).status_code == 200
        assert claude_turn(http, system="You are a helpful assistant.").status_code == 200  # states none
        session = http.get(f"/api/sessions/{CLAUDE_SESSION}").json()
    assert (session["repos"], session["branches"]) == (["llm-scope"], ["feat/sessions-17"])
    assert [(t["repo"], t["branch"]) for t in session["turns"]] == [("llm-scope", "feat/sessions-17"), (None, None)]
