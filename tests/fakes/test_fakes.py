"""Self-tests for the fakes: if the official SDKs accept what the fakes send, gateway tests built on them
exercise real wire formats rather than our assumptions about them."""

from __future__ import annotations

import base64
import gzip
import json
import struct
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from aiohttp import web
from anthropic.types import TextBlock, ToolUseBlock
from openai.types.chat import ChatCompletionMessageFunctionToolCall
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from .otlp_receiver import TRACES_PATH, OtlpReceiver
from .serving import free_port, run_aiohttp_in_thread
from .upstream import (
    FAKE_CACHE_CREATION_TOKENS,
    FAKE_CACHED_TOKENS,
    FAKE_PROMPT_TOKENS,
    FAKE_TOOL_ARGUMENTS,
    FAKE_TOOL_CALL_ID,
    FAKE_TOOL_INPUT,
    FakeUpstream,
    fake_embedding,
    fake_reply,
    start_fake_upstream,
    trigger_error,
    word_count,
)

pytestmark = pytest.mark.timeout(20)

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with start_fake_upstream() as upstream:
        yield upstream


@pytest.fixture
def oai(fake: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-fake", max_retries=0, timeout=5) as client:
        yield client


@pytest.fixture
def claude(fake: FakeUpstream) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake.url, api_key="sk-ant-fake", max_retries=0, timeout=5) as client:
        yield client


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


# ------------------------------------------------------------------------------------------------ serving


def test_serving_context_manager_and_free_port() -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_get("/", hello)
    port = free_port()
    with run_aiohttp_in_thread(app, port=port) as server:
        assert server.port == port and server.url == f"http://127.0.0.1:{port}"
        assert httpx.get(server.url).text == "hi"
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url)


# ------------------------------------------------------------------------------------------- OpenAI chat


def test_openai_non_stream(fake: FakeUpstream, oai: openai.OpenAI) -> None:
    resp = oai.chat.completions.create(model="gpt-test", messages=user("how are you"))
    expected = fake_reply("how are you")
    assert resp.model == "gpt-test" and resp.object == "chat.completion"
    assert resp.choices[0].message.content == expected and resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None and resp.usage.prompt_tokens == FAKE_PROMPT_TOKENS
    assert resp.usage.completion_tokens == word_count(expected)
    assert resp.usage.prompt_tokens_details and resp.usage.prompt_tokens_details.cached_tokens == FAKE_CACHED_TOKENS
    rec = fake.last_request()
    assert rec.path == "/v1/chat/completions" and rec.headers["authorization"] == "Bearer sk-fake"
    assert rec.json["model"] == "gpt-test" and json.loads(rec.body) == rec.json


def test_openai_stream_with_usage(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="gpt-test", messages=user("one two three"), stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == fake_reply("one two three")
    assert chunks[0].choices[0].delta.role == "assistant"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 5
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == FAKE_PROMPT_TOKENS + word_count(text)
    assert all(c.usage is None for c in chunks[:-1])


def test_openai_stream_raw_sse_without_usage(fake: FakeUpstream) -> None:
    body = {"model": "m", "messages": user("hi FAKE_CHUNKS=2"), "stream": True}
    raw = httpx.post(f"{fake.url}/chat/completions", json=body).text
    frames = raw.split("\n\n")
    assert frames[-2:] == ["data: [DONE]", ""]
    assert all(f.startswith("data: ") for f in frames[:-1])
    payloads = [json.loads(f[6:]) for f in frames[:-2]]
    assert len(payloads) == 4 and all("usage" not in p for p in payloads)


def test_openai_tool_call_and_follow_up(oai: openai.OpenAI) -> None:
    resp = oai.chat.completions.create(model="m", messages=user("weather?"), tools=[WEATHER_TOOL])
    (call,) = resp.choices[0].message.tool_calls or []
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert resp.choices[0].finish_reason == "tool_calls" and call.id == FAKE_TOOL_CALL_ID
    assert call.function.name == "get_weather" and call.function.arguments == FAKE_TOOL_ARGUMENTS

    chunks = list(oai.chat.completions.create(model="m", messages=user("weather?"), tools=[WEATHER_TOOL], stream=True))
    deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id == FAKE_TOOL_CALL_ID and deltas[0].function and deltas[0].function.name == "get_weather"
    assert "".join(d.function.arguments or "" for d in deltas if d.function) == FAKE_TOOL_ARGUMENTS

    follow_up: list[Any] = [
        *user("weather?"),
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": FAKE_TOOL_ARGUMENTS},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    final = oai.chat.completions.create(model="m", messages=follow_up, tools=[WEATHER_TOOL])
    assert final.choices[0].message.content == fake_reply("weather?")


def test_openai_error_triggers_and_mode(fake: FakeUpstream, oai: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        oai.chat.completions.create(model="m", messages=user(trigger_error(429)))
    assert info.value.status_code == 429 and "fake upstream says 429" in str(info.value.body)

    fake.set_mode("FAKE_ERROR_503", times=1)
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="m", messages=user("hi"))
    assert oai.chat.completions.create(model="m", messages=user("hi")).choices[0].message.content


def _check_stream_faults(client: httpx.Client) -> None:
    for trigger, expected_lines in (("FAKE_DROP", 2), ("FAKE_GARBAGE", 2)):
        body = {"model": "m", "messages": user(trigger), "stream": True}
        seen: list[str] = []
        with pytest.raises(httpx.RemoteProtocolError), client.stream("POST", "/v1/chat/completions", json=body) as r:
            seen.extend(line for line in r.iter_lines() if line)
        assert len(seen) == expected_lines and "[DONE]" not in "".join(seen)
    assert seen[-1] == "data: {not json"
    garbage = client.post("/v1/chat/completions", json={"model": "m", "messages": user("FAKE_GARBAGE")})
    assert garbage.status_code == 200 and garbage.text == "{not json"
    with pytest.raises(httpx.ReadTimeout):
        client.post("/v1/chat/completions", json={"model": "m", "messages": user("FAKE_SLOW=5")}, timeout=0.2)
    hang = {"model": "m", "messages": user("FAKE_HANG_STREAM"), "stream": True}
    with pytest.raises(httpx.ReadTimeout), client.stream("POST", "/v1/chat/completions", json=hang, timeout=0.3) as r:
        for _ in r.iter_lines():
            pass


def test_stream_faults_and_disconnects(fake: FakeUpstream) -> None:
    with httpx.Client(base_url=fake.url, timeout=2) as client:
        _check_stream_faults(client)
    assert len(fake.wait_for_disconnects(2)) == 2
    assert len(fake.requests) == 5


def test_azure_route_models_and_reset(fake: FakeUpstream) -> None:
    url = f"{fake.url}/openai/deployments/my-dep/chat/completions?api-version=2024-10-21"
    resp = httpx.post(url, json={"messages": user("hi")}, headers={"api-key": "azure-key"}).json()
    assert resp["model"] == "my-dep"
    rec = fake.last_request()
    assert rec.query == {"api-version": "2024-10-21"} and rec.headers["api-key"] == "azure-key"
    models = httpx.get(f"{fake.url}/v1/models").json()
    assert "gpt-4o-mini" in [m["id"] for m in models["data"]]
    assert httpx.post(f"{fake.url}/v2/unknown", json={}).status_code == 404
    fake.reset()
    assert fake.requests == [] and fake.disconnects == []


# ------------------------------------------------------------------------- embeddings and Responses API


def test_embeddings_base64_and_float(fake: FakeUpstream, oai: openai.OpenAI) -> None:
    resp = oai.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    assert fake.last_request().json["encoding_format"] == "base64"  # the SDK's default
    assert [d.embedding for d in resp.data] == [fake_embedding("alpha"), fake_embedding("beta")]
    floats = httpx.post(f"{fake.url}/v1/embeddings", json={"model": "e", "input": "alpha", "dimensions": 4}).json()
    assert floats["data"][0]["embedding"] == fake_embedding("alpha", 4)
    b64 = httpx.post(f"{fake.url}/v1/embeddings", json={"input": "x", "encoding_format": "base64"}).json()
    assert list(struct.unpack("<8f", base64.b64decode(b64["data"][0]["embedding"]))) == fake_embedding("x")


def test_responses_api(oai: openai.OpenAI) -> None:
    resp = oai.responses.create(model="gpt-test", input="tell me")
    assert resp.output_text == fake_reply("tell me") and resp.usage and resp.usage.input_tokens == FAKE_PROMPT_TOKENS
    events = list(oai.responses.create(model="gpt-test", input="tell me", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == fake_reply("tell me")


# -------------------------------------------------------------------------------------------- Anthropic


def test_anthropic_non_stream_stream_and_count(claude: anthropic.Anthropic) -> None:
    msg = claude.messages.create(model="claude-test", max_tokens=100, messages=user("bonjour"))
    assert msg.id.startswith("msg_") and msg.model == "claude-test" and msg.stop_reason == "end_turn"
    assert isinstance(msg.content[0], TextBlock) and msg.content[0].text == fake_reply("bonjour")
    assert msg.usage.cache_read_input_tokens == FAKE_CACHED_TOKENS
    assert msg.usage.cache_creation_input_tokens == FAKE_CACHE_CREATION_TOKENS

    with claude.messages.stream(model="claude-test", max_tokens=100, messages=user("bonjour")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == fake_reply("bonjour") and final.usage.output_tokens == word_count(text)
    assert claude.messages.count_tokens(model="c", messages=user("x")).input_tokens == FAKE_PROMPT_TOKENS


def test_anthropic_tool_use_and_errors(claude: anthropic.Anthropic) -> None:
    tools: list[Any] = [{"name": "get_weather", "input_schema": {"type": "object"}}]
    msg = claude.messages.create(model="c", max_tokens=100, messages=user("weather?"), tools=tools)
    block = msg.content[0]
    assert isinstance(block, ToolUseBlock) and block.input == FAKE_TOOL_INPUT and msg.stop_reason == "tool_use"
    with claude.messages.stream(model="c", max_tokens=100, messages=user("weather?"), tools=tools) as stream:
        streamed = stream.get_final_message().content[0]
    assert streamed.type == "tool_use" and streamed.input == FAKE_TOOL_INPUT

    follow: list[Any] = [
        *user("weather?"),
        {"role": "assistant", "content": [block.model_dump()]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "sunny"}]},
    ]
    answer = claude.messages.create(model="c", max_tokens=100, messages=follow, tools=tools)
    assert isinstance(answer.content[0], TextBlock) and answer.content[0].text == fake_reply("weather?")
    with pytest.raises(anthropic.AuthenticationError) as info:
        claude.messages.create(model="c", max_tokens=10, messages=user("FAKE_ERROR_401"))
    assert isinstance(info.value.body, dict) and info.value.body["error"]["type"] == "authentication_error"


# ------------------------------------------------------------------------------------------ OTLP receiver


def _kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def _export(trace_id: bytes, names: list[str]) -> bytes:
    spans = [
        Span(
            trace_id=trace_id,
            span_id=bytes([i + 1] * 8),
            parent_span_id=b"" if i == 0 else bytes([1] * 8),
            name=name,
            start_time_unix_nano=1_000 + i,
            end_time_unix_nano=2_000 + i,
            attributes=[
                _kv("gen_ai.request.model", AnyValue(string_value="gpt-test")),
                _kv("gen_ai.usage.input_tokens", AnyValue(int_value=12)),
                _kv("llm.stream", AnyValue(bool_value=True)),
                _kv("cost", AnyValue(double_value=0.5)),
                _kv("tags", AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="a")]))),
            ],
        )
        for i, name in enumerate(names)
    ]
    resource = Resource(attributes=[_kv("service.name", AnyValue(string_value="llm-scope"))])
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])]
    )
    return gzip.compress(request.SerializeToString())


OTLP_HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
AUTH = ("pk-lf-test", "sk-lf-test")


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver(credentials=AUTH).start() as rx:
        yield rx


def test_otlp_decode_and_flatten(receiver: OtlpReceiver) -> None:
    trace_id = bytes(range(16))
    resp = httpx.post(
        receiver.traces_url, content=_export(trace_id, ["root", "child"]), headers=OTLP_HEADERS, auth=AUTH
    )
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/x-protobuf"
    ExportTraceServiceResponse().ParseFromString(resp.content)
    root, child = receiver.wait_for_spans(2)
    assert root["trace_id"] == trace_id.hex() and root["parent_span_id"] is None
    assert child["parent_span_id"] == root["span_id"] and child["start_ns"] == 1_001
    assert root["attributes"] == {
        "gen_ai.request.model": "gpt-test",
        "gen_ai.usage.input_tokens": 12,
        "llm.stream": True,
        "cost": 0.5,
        "tags": ["a"],
    }
    assert root["resource"]["service.name"] == "llm-scope"
    assert receiver.spans_for_trace(trace_id.hex().upper()) == [root, child] and receiver.requests[0].gzipped
    assert httpx.post(receiver.traces_url, content=b"x", headers=OTLP_HEADERS, auth=AUTH).status_code == 400
    assert httpx.post(receiver.traces_url, content=_export(trace_id, ["r"]), headers=OTLP_HEADERS).status_code == 401


def test_otlp_modes_restart_and_scores(receiver: OtlpReceiver) -> None:
    body = _export(b"\x01" * 16, ["s"])

    def post(timeout: float = 5.0) -> httpx.Response:
        return httpx.post(receiver.traces_url, content=body, headers=OTLP_HEADERS, auth=AUTH, timeout=timeout)

    receiver.set_mode("429", times=1)
    first = post()
    assert first.status_code == 429 and first.headers["retry-after"] == "1"
    assert post().status_code == 200
    receiver.set_mode("503")
    assert post().status_code == 503
    receiver.set_mode("hang")
    with pytest.raises(httpx.ReadTimeout):
        post(timeout=0.2)
    receiver.set_mode("ok")
    assert len(receiver.spans()) == 1 and len(receiver.requests) == 4

    port = receiver.port
    receiver.stop()
    with pytest.raises(httpx.ConnectError):
        post()
    receiver.start()
    assert receiver.port == port and post().status_code == 200 and len(receiver.spans()) == 2

    scores_url = f"{receiver.url}/api/public/scores"
    assert httpx.post(scores_url, json={"name": "quality", "value": 1}).status_code == 401
    ok = httpx.post(scores_url, json={"name": "quality", "value": 1, "traceId": "t"}, auth=AUTH)
    assert ok.status_code == 200 and ok.json()["id"]
    assert receiver.scores == [{"name": "quality", "value": 1, "traceId": "t"}]
    assert TRACES_PATH in receiver.traces_url
