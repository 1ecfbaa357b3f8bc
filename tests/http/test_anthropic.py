"""Anthropic Messages through the gateway with the official anthropic SDK: native passthrough, the mock,
and translation to an OpenAI-format upstream."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest

from tests.conftest import UPSTREAM_KEY
from tests.fakes.upstream import FakeUpstream
from tests.fakes.wire import FAKE_CACHED_TOKENS, FAKE_PROMPT_TOKENS, FAKE_TOOL_INPUT, fake_reply
from tests.gateway_server import GatewayServer

TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


def client(gw: GatewayServer, **kwargs: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=kwargs.pop("api_key", "unused"), max_retries=0, **kwargs)


def test_native_passthrough_non_stream_keeps_fields_and_headers(gateway: GatewayServer, upstream: FakeUpstream) -> None:
    raw = client(gateway).messages.with_raw_response.create(
        model="claude-fake",
        max_tokens=100,
        messages=[{"role": "user", "content": "hi anthropic"}],
        system="be brief",
        metadata={"user_id": "u-9"},
        extra_headers={"anthropic-beta": "tools-2024"},
        extra_body={"unknown_field": 1, "temperature": 0.1},
    )
    message = raw.parse()
    assert message.content[0].type == "text" and message.content[0].text == fake_reply("hi anthropic")
    assert message.usage.input_tokens == FAKE_PROMPT_TOKENS
    assert len(raw.headers["x-trace-id"]) == 32
    sent = upstream.last_request()
    assert sent.path == "/v1/messages" and sent.headers["x-api-key"] == UPSTREAM_KEY
    assert sent.headers["anthropic-beta"] == "tools-2024" and sent.headers["anthropic-version"]
    assert sent.json["model"] == "claude-haiku-4-5-20251001" and sent.json["unknown_field"] == 1
    assert sent.json["metadata"] == {"user_id": "u-9"} and sent.json["system"] == "be brief"


def test_native_stream_is_forwarded_event_for_event(gateway: GatewayServer) -> None:
    with gateway.client() as http:
        r = http.post(
            "/v1/messages",
            headers={"anthropic-version": "2023-06-01"},
            json={
                "model": "claude-fake",
                "max_tokens": 50,
                "stream": True,
                "messages": [{"role": "user", "content": "stream me"}],
            },
        )
    names = [line[7:] for line in r.text.split("\n") if line.startswith("event: ")]
    assert names[0] == "message_start" and names[-1] == "message_stop" and "content_block_delta" in names
    with client(gateway).messages.stream(
        model="claude-fake", max_tokens=50, messages=[{"role": "user", "content": "stream me"}]
    ) as stream:
        assert "".join(stream.text_stream) == fake_reply("stream me")
        final = stream.get_final_message()
    assert final.usage.output_tokens > 0


def test_system_role_inside_messages_is_hoisted(gateway: GatewayServer, upstream: FakeUpstream) -> None:
    with gateway.client() as http:
        r = http.post(
            "/v1/messages",
            json={
                "model": "claude-fake",
                "max_tokens": 20,
                "system": "first",
                "messages": [{"role": "system", "content": "second"}, {"role": "user", "content": "hello"}],
            },
        )
    assert r.status_code == 200, r.text
    sent = upstream.last_request().json
    assert [m["role"] for m in sent["messages"]] == ["user"]
    assert sent["system"] == [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]


def test_tool_use_round_trip_through_the_sdk(gateway: GatewayServer) -> None:
    sdk = client(gateway)
    first = sdk.messages.create(
        model="claude-fake", max_tokens=100, tools=TOOLS, messages=[{"role": "user", "content": "weather in Paris?"}]
    )
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.name == "get_weather" and use.input == FAKE_TOOL_INPUT
    second = sdk.messages.create(
        model="claude-fake",
        max_tokens=100,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
        ],
    )
    assert second.stop_reason == "end_turn"


def test_count_tokens_and_both_auth_styles(tmp_path: Any, upstream: FakeUpstream) -> None:
    from tests.conftest import upstream_models
    from tests.gateway_server import make_settings, model_config

    settings = make_settings(tmp_path, master_key="sk-gateway-master-0123456789")
    with GatewayServer(settings, model_config=model_config(upstream_models(upstream))) as gw:
        counted = client(gw, api_key="sk-gateway-master-0123456789").messages.count_tokens(
            model="claude-fake", messages=[{"role": "user", "content": "count"}]
        )
        assert counted.input_tokens > 0
        bearer = client(gw, api_key=None, auth_token="sk-gateway-master-0123456789")
        assert bearer.messages.create(
            model="mock-gpt", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        ).content
        with pytest.raises(anthropic.AuthenticationError) as info:
            client(gw, api_key="wrong").messages.create(
                model="mock-gpt", max_tokens=10, messages=[{"role": "user", "content": "x"}]
            )
        assert info.value.body["type"] == "error"  # type: ignore[index]
    assert upstream.last_request().path == "/v1/messages/count_tokens"


def test_mock_model_speaks_anthropic(gateway: GatewayServer) -> None:
    sdk = client(gateway)
    message = sdk.messages.create(model="mock-gpt", max_tokens=50, messages=[{"role": "user", "content": "yo"}])
    assert "You said: yo" in message.content[0].text  # type: ignore[union-attr]
    with sdk.messages.stream(model="mock-gpt", max_tokens=50, messages=[{"role": "user", "content": "yo"}]) as s:
        assert "You said: yo" in "".join(s.text_stream)
    tool = sdk.messages.create(
        model="mock-gpt", max_tokens=50, tools=TOOLS, messages=[{"role": "user", "content": "t"}]
    )
    assert tool.stop_reason == "tool_use"


def test_translated_to_an_openai_upstream(gateway: GatewayServer, upstream: FakeUpstream) -> None:
    sdk = client(gateway)
    message = sdk.messages.create(
        model="gpt-fake", max_tokens=50, system="sys", messages=[{"role": "user", "content": "translate me"}]
    )
    assert message.content[0].text == fake_reply("translate me")  # type: ignore[union-attr]
    assert upstream.last_request().path == "/v1/chat/completions"
    with sdk.messages.stream(model="gpt-fake", max_tokens=50, messages=[{"role": "user", "content": "and me"}]) as s:
        assert "".join(s.text_stream) == fake_reply("and me")


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({"model": "claude-fake", "max_tokens": 5}, 400, "invalid_request_error"),
        ({"model": "claude-fake", "messages": [{"role": "user", "content": "x"}]}, 400, "invalid_request_error"),
        ({"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, 404, "not_found_error"),
        (
            {"model": "claude-fake", "max_tokens": 5, "messages": [{"role": "user", "content": "FAKE_ERROR_429"}]},
            429,
            "rate_limit_error",
        ),
        (
            {"model": "claude-fake", "max_tokens": 5, "messages": [{"role": "user", "content": "FAKE_ERROR_529"}]},
            502,
            "api_error",
        ),
    ],
)
def test_errors_in_anthropic_shape(gateway: GatewayServer, body: dict[str, Any], status: int, kind: str) -> None:
    with gateway.client() as http:
        r = http.post("/v1/messages?beta=true", json=body)
    assert r.status_code == status
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == kind and r.json()["error"]["message"]


def test_messages_calls_are_traced_with_usage_and_first_token(gateway: GatewayServer) -> None:
    with gateway.client() as http:
        r = http.post(
            "/v1/messages",
            headers={"x-claude-code-session-id": "cc-1", "X-User-ID": "dev"},
            json={
                "model": "claude-fake",
                "max_tokens": 50,
                "stream": True,
                "messages": [{"role": "user", "content": "trace me"}],
            },
        )
        trace = http.get(f"/api/traces/{r.headers['x-trace-id']}").json()
    assert trace["route"] == "messages" and trace["session_id"] == "cc-1" and trace["user_id"] == "dev"
    assert trace["input_tokens"] == FAKE_PROMPT_TOKENS + FAKE_CACHED_TOKENS + 3  # input + cache read + cache write
    assert trace["output_tokens"] > 0 and trace["ttft_ms"] is not None and trace["cost_total"] > 0
    assert trace["output"]["content"][0]["text"] == fake_reply("trace me")
    assert json.dumps(trace).count(UPSTREAM_KEY) == 0


def test_garbage_never_500s(gateway: GatewayServer) -> None:
    with gateway.client() as http:
        for payload in (b"{", b"[]", b'{"model": 1}', b'{"model": "x", "messages": "y", "max_tokens": 1}'):
            r = http.post("/v1/messages", content=payload)
            assert r.status_code == 400 and r.json()["type"] == "error"


def test_unknown_anthropic_paths_answer_in_anthropic_shape(gateway: GatewayServer) -> None:
    with gateway.client() as http:
        r = http.post("/v1/messages/batches", json={})
        assert r.status_code == 404 and r.json()["type"] == "error"
        r = http.get("/v1/messages")
        assert r.status_code == 405 and r.json()["error"]["type"] == "invalid_request_error"


def test_codex_session_header_groups_calls(gateway: GatewayServer) -> None:
    with gateway.client() as http:
        r = http.post(
            "/v1/chat/completions",
            headers={"session-id": "codex-7"},
            json={"model": "mock-gpt", "messages": [{"role": "user", "content": "x"}]},
        )
        assert http.get(f"/api/traces/{r.headers['x-trace-id']}").json()["session_id"] == "codex-7"
