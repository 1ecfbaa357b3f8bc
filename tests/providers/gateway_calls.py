"""Calling the gateway under test as a client would, and reading what comes back in each API's own format.

Shared by the translated-provider tests (test_translated_wires.py, test_vertex.py): a stream is checked for
being well-formed in the client's format (OpenAI chunks ending in [DONE]; Anthropic's named events in their
documented order) while its text is read out.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.gateway_server import GatewayServer

# A paced stream: the fake pauses PACE_S before each of its chunks after the first, PACED_GAPS pauses in all.
PACE_S, PACED_GAPS = 0.2, 3
PACE = f"FAKE_CHUNK_DELAY={PACE_S} FAKE_CHUNKS={PACED_GAPS + 1} "


def ttft_is_the_first_tokens(trace: dict[str, Any]) -> bool:
    """The stored first-token time is the first token's, not the end's: at least half of the paced pauses lie
    between it and the end (a stream buffered anywhere has none). Half, not all: the first chunk's relay also
    carries LiteLLM's first-use work, and on a loaded machine the full bound failed by 2 ms."""
    ttft, duration = trace["ttft_ms"], trace["duration_ms"]
    return ttft is not None and 0 <= ttft <= duration - PACED_GAPS * PACE_S * 1000 / 2


def sse_events(raw: str) -> list[tuple[str | None, str]]:
    events = []
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        assert set(fields) <= {"event", "data"} and "data" in fields, block
        events.append((fields.get("event"), fields["data"]))
    return events


def openai_stream_text(raw: str) -> str:
    """A chat stream as OpenAI sends one: chunks, one finish_reason, one usage chunk, then [DONE]."""
    events = sse_events(raw)
    assert events[-1] == (None, "[DONE]") and all(name is None for name, _ in events)
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    assert sum(1 for c in chunks for choice in c["choices"] if choice.get("finish_reason")) == 1
    assert sum(1 for c in chunks if c.get("usage")) == 1
    return "".join(choice["delta"].get("content") or "" for c in chunks for choice in c["choices"])


def anthropic_stream_text(raw: str) -> str:
    """A Messages stream as Anthropic sends one: each event named by its type, in the documented order."""
    events = [(name, json.loads(data)) for name, data in sse_events(raw)]
    assert all(name == data["type"] for name, data in events), events
    types = [name for name, _ in events if name != "ping"]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"], types
    assert types.index("content_block_start") < types.index("content_block_delta") < types.index("content_block_stop")
    assert events[[n for n, _ in events].index("message_delta")][1]["delta"]["stop_reason"] == "end_turn"
    return "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")


def call(gateway: GatewayServer, api: str, model: str, text: str, stream: bool) -> httpx.Response:
    body: dict[str, Any] = {"model": model, "max_tokens": 200, "messages": [{"role": "user", "content": text}]}
    if stream:
        body["stream"] = True
        if api == "chat":
            body["stream_options"] = {"include_usage": True}
    path = "/v1/chat/completions" if api == "chat" else "/v1/messages"
    with gateway.client() as http:
        return http.post(path, json=body)


def answered_text(r: httpx.Response, api: str, stream: bool) -> str:
    """The answer's text from a 200, whole or streamed, in the API's own shape ("chat" or "messages")."""
    assert r.status_code == 200, r.text
    if not stream:
        obj = r.json()
        return str(obj["choices"][0]["message"]["content"] if api == "chat" else obj["content"][0]["text"])
    assert r.headers["content-type"].startswith("text/event-stream")
    return openai_stream_text(r.text) if api == "chat" else anthropic_stream_text(r.text)


def assert_error_in_clients_shape(r: httpx.Response, api: str, status: int) -> None:
    """The status the client gets, in its API's own error body: OpenAI's four fields, or Anthropic's."""
    assert r.status_code == status, r.text
    body = r.json()
    if api == "chat":
        assert set(body["error"]) == {"message", "type", "param", "code"} and body["error"]["message"]
    else:
        assert body["type"] == "error" and body["error"]["type"] and body["error"]["message"]


def trace_of(gateway: GatewayServer, response: httpx.Response) -> dict[str, Any]:
    with gateway.client() as http:
        trace: dict[str, Any] = http.get(f"/api/traces/{response.headers['x-trace-id']}").json()
    return trace
