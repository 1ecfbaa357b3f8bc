"""OpenAI Responses and Embeddings through the gateway with the official openai SDK."""

from __future__ import annotations

import base64
import struct

import openai

from tests.conftest import UPSTREAM_KEY
from tests.fakes.upstream import FakeUpstream
from tests.fakes.wire import FAKE_PROMPT_TOKENS, fake_reply
from tests.fakes.wire_extras import fake_embedding
from tests.gateway_server import GatewayServer


def sdk(gw: GatewayServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)


def test_responses_non_stream_passthrough(gateway: GatewayServer, upstream: FakeUpstream) -> None:
    response = sdk(gateway).responses.create(
        model="gpt-fake", input="hello responses", instructions="be nice", extra_body={"custom": True}
    )
    assert response.output_text == fake_reply("hello responses")
    sent = upstream.last_request()
    assert sent.path == "/v1/responses" and sent.json["model"] == "gpt-4o-mini" and sent.json["custom"] is True
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_responses_stream_is_traced_with_usage_and_first_token(gateway: GatewayServer) -> None:
    client = sdk(gateway)
    raw = client.responses.with_raw_response.create(model="gpt-fake", input="stream responses", stream=True)
    events = list(raw.parse())
    assert events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == fake_reply("stream responses")
    with gateway.client() as http:
        trace = http.get(f"/api/traces/{raw.headers['x-trace-id']}").json()
    assert trace["route"] == "responses" and trace["input_tokens"] == FAKE_PROMPT_TOKENS
    assert trace["output_tokens"] > 0 and trace["ttft_ms"] is not None and trace["input"] == "stream responses"


def test_responses_with_the_mock_model(gateway: GatewayServer) -> None:
    client = sdk(gateway)
    assert "You said: hi" in client.responses.create(model="mock-gpt", input="hi").output_text
    with client.responses.stream(model="mock-gpt", input="hi") as stream:
        final = stream.get_final_response()
    assert "You said: hi" in final.output_text
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {"q": {}}}}]
    called = client.responses.create(model="mock-gpt", input="use a tool", tools=tools)  # type: ignore[arg-type]
    assert called.output[0].type == "function_call"


def test_responses_errors(gateway: GatewayServer) -> None:
    with gateway.client() as http:
        assert http.post("/v1/responses", json={"model": "gpt-fake"}).json()["error"]["param"] == "input"
        assert http.post("/v1/responses", json={"model": "nope", "input": "x"}).status_code == 404
        assert http.post("/v1/responses", json={"model": "gpt-fake", "input": "FAKE_ERROR_429"}).status_code == 429


def test_embeddings_float_and_base64_are_exact(gateway: GatewayServer, upstream: FakeUpstream) -> None:
    client = sdk(gateway)
    floats = client.embeddings.create(model="gpt-fake", input=["alpha", "beta"], encoding_format="float")
    assert [d.embedding for d in floats.data] == [fake_embedding("alpha"), fake_embedding("beta")]
    assert upstream.last_request().json["encoding_format"] == "float"
    default = client.embeddings.create(model="gpt-fake", input="alpha")  # the SDK asks for base64 by default
    assert upstream.last_request().json["encoding_format"] == "base64"
    assert default.data[0].embedding == fake_embedding("alpha")
    with gateway.client() as http:
        r = http.post("/v1/embeddings", json={"model": "gpt-fake", "input": "alpha", "encoding_format": "base64"})
        encoded = r.json()["data"][0]["embedding"]
        assert isinstance(encoded, str)
        decoded = list(struct.unpack(f"<{len(base64.b64decode(encoded)) // 4}f", base64.b64decode(encoded)))
        assert decoded == fake_embedding("alpha")
        trace = http.get(f"/api/traces/{r.headers['x-trace-id']}").json()
    assert trace["route"] == "embeddings" and trace["input"] == "alpha" and trace["output"]["embeddings"] == 1


def test_embeddings_with_the_mock_model(gateway: GatewayServer) -> None:
    result = sdk(gateway).embeddings.create(model="mock-gpt", input=["a", "b"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 16
