"""The Responses API (what Codex speaks) for a model LiteLLM translates: Codex pointed at a Claude model.

LiteLLM's Responses entry point imports `mcp` on every call, so without LiteLLM's `mcp` extra in the runtime
set every such call failed with a 502 naming the missing module. These run it against the fake Anthropic
upstream, whole and streamed, and check the answer, the event names, the stored token buckets and the price.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from llm_scope.accounting.cost import price_table
from tests.fakes.upstream import FakeUpstream
from tests.fakes.wire import (
    FAKE_CACHE_CREATION_TOKENS,
    FAKE_CACHED_TOKENS,
    FAKE_PROMPT_TOKENS,
    fake_reply,
    word_count,
)
from tests.gateway_server import GatewayServer
from tests.polling import wait_until

UPSTREAM_MODEL = "claude-haiku-4-5-20251001"  # what claude-fake resolves to (tests/conftest.py)


def stored(gateway: GatewayServer, trace_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def arrived() -> bool:
        with gateway.client() as http:
            r = http.get(f"/api/traces/{trace_id}")
        if r.status_code == 200:
            found.update(r.json())
        return bool(found)

    wait_until(arrived, f"trace {trace_id} stored")
    return found


def assert_billed_as_anthropic_reported(trace: dict[str, Any], words: int) -> None:
    """Anthropic reported 12 fresh + 2 cache-read + 3 cache-write in; each bucket is kept and priced apart."""
    whole = FAKE_PROMPT_TOKENS + FAKE_CACHED_TOKENS + FAKE_CACHE_CREATION_TOKENS
    assert (trace["input_tokens"], trace["output_tokens"]) == (whole, words)
    assert (trace["cache_read_tokens"], trace["cache_write_tokens"]) == (FAKE_CACHED_TOKENS, FAKE_CACHE_CREATION_TOKENS)
    prices = price_table()[UPSTREAM_MODEL]
    dollars = (
        FAKE_PROMPT_TOKENS * prices["input_cost_per_token"]
        + FAKE_CACHED_TOKENS * prices["cache_read_input_token_cost"]
        + FAKE_CACHE_CREATION_TOKENS * prices["cache_creation_input_token_cost"]
        + words * prices["output_cost_per_token"]
    )
    assert trace["cost_total"] == pytest.approx(dollars, rel=1e-9)
    assert trace["cost_cache_write"] == pytest.approx(
        FAKE_CACHE_CREATION_TOKENS * prices["cache_creation_input_token_cost"]
    )


def test_a_whole_answer(gateway: GatewayServer, upstream: FakeUpstream) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    raw = client.responses.with_raw_response.create(model="claude-fake", input="hi claude", max_output_tokens=100)
    answer = raw.parse()
    assert answer.output_text == fake_reply("hi claude") and answer.status == "completed"
    assert answer.usage is not None and answer.usage.output_tokens == word_count(answer.output_text)
    sent = upstream.last_request()
    assert sent.path == "/v1/messages" and sent.json["model"] == UPSTREAM_MODEL
    trace = stored(gateway, raw.headers["x-trace-id"])
    assert trace["route"] == "responses" and trace["status_code"] == 200 and trace["input"] == "hi claude"
    assert_billed_as_anthropic_reported(trace, word_count(answer.output_text))


def test_a_stream_names_its_events_as_openai_does(gateway: GatewayServer) -> None:
    with gateway.client() as http:
        r = http.post("/v1/responses", json={"model": "claude-fake", "input": "hi claude", "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [block.split("\n") for block in r.text.strip().split("\n\n")]
    names = [lines[0].removeprefix("event: ") for lines in events]
    payloads = [json.loads(lines[1].removeprefix("data: ")) for lines in events]
    # The event line carries the same name as the data's type: "response.created", not an enum's repr.
    assert names == [p["type"] for p in payloads]
    assert names[0] == "response.created" and names[-1] == "response.completed"
    text = "".join(p["delta"] for p in payloads if p["type"] == "response.output_text.delta")
    assert text == fake_reply("hi claude")
    # The official SDK reads the same stream.
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    with client.responses.stream(model="claude-fake", input="hi claude") as stream:
        assert stream.get_final_response().output_text == fake_reply("hi claude")
    trace = stored(gateway, r.headers["x-trace-id"])
    assert trace["stream"] == 1 and trace["ttft_ms"] is not None
    assert_billed_as_anthropic_reported(trace, word_count(text))
