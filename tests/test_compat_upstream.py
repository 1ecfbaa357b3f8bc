"""The `make compat` scripted upstream (compat/), checked with the official SDKs so its wire shapes stay
parseable: every format answers, asks for a tool, and closes the round trip once the tool result is back.
The real CLIs themselves run only in `make compat`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from compat.script import decide

from tests.fakes.serving import free_port

KEY = "compat-test-key"
NONCE = "NONCE-0123456789abcdef"


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "compat.scripted_upstream", "--port", str(port), "--key", KEY]
    proc = subprocess.Popen(argv, cwd=Path(__file__).resolve().parents[1])
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


READ_TOOL = {"name": "Read", "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}}}


@pytest.mark.parametrize(
    ("fmt", "body", "rule", "expected"),
    [
        ("chat", {"messages": [{"role": "user", "content": "COMPAT_ASK x1"}]}, "answer", "ANSWER-x1"),
        ("messages", {"messages": [{"role": "user", "content": "COMPAT_TOOL path=/p"}], "tools": [READ_TOOL]},
         "tool_call", "Read"),
        ("responses", {"input": [{"type": "function_call_output", "call_id": "c", "output": f"out {NONCE}"}]},
         "roundtrip", f"ROUNDTRIP:{NONCE}"),
        ("chat", {"messages": [{"role": "user", "content": "COMPAT_EDIT path=a/v.py"}]}, "edit", "v.py"),
        ("chat", {"messages": [{"role": "user", "content": "hi"}]}, "default", "ok"),
    ],
)  # fmt: skip
def test_decide(fmt: str, body: dict[str, object], rule: str, expected: str) -> None:
    reply = decide(fmt, body)  # type: ignore[arg-type]
    assert reply.rule == rule
    assert expected in (reply.tool.name if reply.tool else reply.text)


def test_openai_chat_stream_tool_round_trip(upstream: str) -> None:
    client = openai.OpenAI(base_url=f"{upstream}/v1", api_key=KEY)
    tool = {"type": "function", "function": {"name": "read_file", "parameters": {
        "type": "object", "properties": {"path": {"type": "string"}}}}}  # fmt: skip
    messages: list[dict[str, object]] = [{"role": "user", "content": "COMPAT_TOOL path=/tmp/n.txt"}]
    stream = client.chat.completions.create(model="m", messages=messages, tools=[tool], stream=True)  # type: ignore[arg-type,list-item]
    calls = [c.choices[0].delta.tool_calls for c in stream if c.choices and c.choices[0].delta.tool_calls]
    assert calls[0][0].function.name == "read_file"  # type: ignore[union-attr]
    args = "".join(c[0].function.arguments or "" for c in calls)  # type: ignore[union-attr]
    assert json.loads(args) == {"path": "/tmp/n.txt"}
    messages += [
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                              "function": {"name": "read_file", "arguments": args}}]},
        {"role": "tool", "tool_call_id": "c1", "content": f"compat nonce: {NONCE}"},
    ]  # fmt: skip
    done = client.chat.completions.create(model="m", messages=messages, tools=[tool])  # type: ignore[arg-type,list-item]
    assert f"ROUNDTRIP:{NONCE}" in (done.choices[0].message.content or "")


def test_responses_stream_function_call(upstream: str) -> None:
    client = openai.OpenAI(base_url=f"{upstream}/v1", api_key=KEY)
    tool = {"type": "function", "name": "exec_command", "parameters": {
        "type": "object", "properties": {"cmd": {"type": "string"}}}}  # fmt: skip
    with client.responses.stream(model="m", input="COMPAT_TOOL path=/tmp/n.txt", tools=[tool]) as stream:  # type: ignore[list-item]
        final = stream.get_final_response()
    calls = [item for item in final.output if item.type == "function_call"]
    assert calls and json.loads(calls[0].arguments) == {"cmd": "cat /tmp/n.txt"}
    assert final.usage is not None and final.usage.output_tokens > 0


def test_anthropic_stream_and_auth(upstream: str) -> None:
    client = anthropic.Anthropic(base_url=upstream, api_key=KEY)
    with client.messages.stream(
        model="claude-x", max_tokens=100, messages=[{"role": "user", "content": "COMPAT_TOOL path=/n"}],
        tools=[READ_TOOL],  # type: ignore[list-item]
    ) as stream:  # fmt: skip
        message = stream.get_final_message()
    assert message.stop_reason == "tool_use"
    assert message.content[-1].type == "tool_use" and message.content[-1].input == {"file_path": "/n"}
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=upstream, api_key="wrong").messages.create(
            model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
