"""Chat completions end to end: official SDK and httpx → gateway (uvicorn on loopback) → fake upstream."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import UPSTREAM_KEY
from tests.fakes.upstream import FakeUpstream
from tests.fakes.wire import FAKE_PROMPT_TOKENS, FAKE_TOOL_ARGUMENTS, fake_reply
from tests.gateway_server import GatewayServer, make_settings, model_config

MESSAGES = [{"role": "user", "content": "hello gateway"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def sdk(gateway: GatewayServer, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, **kwargs)


def test_non_stream_through_the_sdk_reaches_upstream_with_every_field(
    gateway: GatewayServer, upstream: FakeUpstream
) -> None:
    resp = sdk(gateway).chat.completions.with_raw_response.create(
        model="gpt-fake",
        messages=MESSAGES,
        temperature=0.3,
        seed=7,
        n=1,
        logprobs=False,
        max_completion_tokens=50,
        reasoning_effort="low",
        response_format={"type": "text"},
        parallel_tool_calls=False,
        tools=TOOLS,
        tool_choice="none",
        extra_body={"unknown_field": {"kept": True}},
    )
    completion = resp.parse()
    assert completion.choices[0].message.tool_calls  # the fake always calls a tool when offered one
    assert completion.usage is not None and completion.usage.prompt_tokens == FAKE_PROMPT_TOKENS
    assert len(resp.headers["x-trace-id"]) == 32 and float(resp.headers["x-duration-ms"]) > 0
    sent = upstream.last_request()
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent.json["model"] == "gpt-4o-mini"
    for key, value in {
        "temperature": 0.3,
        "seed": 7,
        "n": 1,
        "logprobs": False,
        "max_completion_tokens": 50,
        "reasoning_effort": "low",
        "response_format": {"type": "text"},
        "parallel_tool_calls": False,
        "tools": TOOLS,
        "tool_choice": "none",
        "unknown_field": {"kept": True},
    }.items():
        assert sent.json[key] == value, key


def test_stream_without_usage_requested_looks_exactly_as_asked(gateway: GatewayServer, upstream: FakeUpstream) -> None:
    with gateway.client() as client:
        r = client.post("/v1/chat/completions", json={"model": "gpt-fake", "messages": MESSAGES, "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert upstream.last_request().json["stream_options"] == {"include_usage": True}  # gateway asked for usage
    assert '"usage"' not in r.text  # ... but the client sees the stream it asked for
    events = [line[6:] for line in r.text.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1])
    assert text == fake_reply("hello gateway")


def test_stream_with_usage_through_the_sdk(gateway: GatewayServer) -> None:
    stream = sdk(gateway).chat.completions.create(
        model="gpt-fake", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == FAKE_PROMPT_TOKENS
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == fake_reply("hello gateway")


def test_streamed_tool_call_assembles_in_the_sdk(gateway: GatewayServer) -> None:
    stream = sdk(gateway).chat.completions.create(model="gpt-fake", messages=MESSAGES, tools=TOOLS, stream=True)
    args = ""
    names = []
    for chunk in stream:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            args += call.function.arguments or "" if call.function else ""
            if call.function and call.function.name:
                names.append(call.function.name)
    assert names == ["get_weather"] and json.loads(args) == json.loads(FAKE_TOOL_ARGUMENTS)


def test_azure_deployment_url_and_key_header(gateway: GatewayServer, upstream: FakeUpstream) -> None:
    sdk(gateway).chat.completions.create(model="azure-fake", messages=MESSAGES)
    sent = upstream.last_request()
    assert sent.path == "/openai/deployments/my-deployment/chat/completions"
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.headers["api-key"] == UPSTREAM_KEY and "authorization" not in sent.headers


def test_metadata_null_and_session_headers(gateway: GatewayServer, upstream: FakeUpstream) -> None:
    with gateway.client() as client:
        r = client.post(
            "/v1/chat/completions",
            headers={"X-User-ID": "u1", "X-Session-ID": "s1"},
            json={"model": "gpt-fake", "messages": MESSAGES, "metadata": None, "user": "body-user"},
        )
    assert r.status_code == 200, r.text
    assert "metadata" not in upstream.last_request().json  # gateway metadata is not sent to OpenAI without `store`
    assert upstream.last_request().json["user"] == "body-user"


# --- byte faithfulness: an upstream whose exact bytes we control --------------------------------------------

ODD_JSON = (
    b'{"id":"x1", "object" : "chat.completion","choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":"caf\\u00e9 \xe2\x98\x95"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,'
    b'"completion_tokens":2,"total_tokens":5},"x_vendor":[1,2.50,true]}'
)
ODD_SSE = [
    b'data: {"id":"s1","choices":[{"index":0,"delta":{"role":"assistant","content":"a"}}]}\n\n',
    b'data: {"id":"s1","choices":[{"index":0,"delta":{"content":"\\u00e9"}, "finish_reason" :null}]}\n\n',
    b': keep-alive comment\n\ndata: {"id":"s1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\n',
    b"data: [DONE]\n\n",
]


@pytest.fixture
def fixed_upstream() -> Any:
    from aiohttp import web

    from tests.fakes.serving import run_aiohttp_in_thread

    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("stream"):
            return web.Response(body=ODD_JSON, content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for chunk in ODD_SSE:
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    server = run_aiohttp_in_thread(app)
    yield server
    server.stop()


def test_passthrough_is_byte_faithful(tmp_path: Path, fixed_upstream: Any) -> None:
    models = [{"model_name": "odd", "litellm_params": {"model": "openai/odd", "api_base": fixed_upstream.url + "/v1"}}]
    with GatewayServer(make_settings(tmp_path), model_config=model_config(models)) as gw, gw.client() as client:
        r = client.post("/v1/chat/completions", json={"model": "odd", "messages": MESSAGES})
        assert r.content == ODD_JSON
        r = client.post(
            "/v1/chat/completions",
            json={"model": "odd", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}},
        )
        assert r.content == b"".join(ODD_SSE)


# --- errors --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "status", "code", "param"),
    [
        (b"{not json", 400, "invalid_json", None),
        (b"", 400, "invalid_json", None),
        (b"[1, 2]", 400, "invalid_type", None),
        (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "missing_required_parameter", "model"),
        (b'{"model": 42, "messages": [{"role": "user", "content": "x"}]}', 400, "invalid_type", "model"),
        (b'{"model": "gpt-fake"}', 400, "missing_required_parameter", "messages"),
        (b'{"model": "gpt-fake", "messages": "hi"}', 400, "invalid_type", "messages"),
        (b'{"model": "gpt-fake", "messages": [{"content": "no role"}]}', 400, "invalid_type", "messages[0]"),
        (
            b'{"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}',
            404,
            "model_not_found",
            "model",
        ),
    ],
)
def test_bad_requests_get_precise_openai_errors(
    gateway: GatewayServer, payload: bytes, status: int, code: str, param: str | None
) -> None:
    with gateway.client() as client:
        r = client.post("/v1/chat/completions", content=payload, headers={"content-type": "application/json"})
    assert r.status_code == status
    error = r.json()["error"]
    assert error["code"] == code and error["param"] == param and error["message"] and error["type"]
    assert len(r.headers["x-trace-id"]) == 32 and "x-duration-ms" in r.headers


def test_oversize_body_is_413(gateway: GatewayServer) -> None:
    big = {"model": "gpt-fake", "messages": [{"role": "user", "content": "x" * 70_000}]}
    with gateway.client() as client:
        r = client.post("/v1/chat/completions", json=big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


@pytest.mark.parametrize(
    ("trigger", "status"),
    [
        ("FAKE_ERROR_400", 400),
        ("FAKE_ERROR_401", 401),
        ("FAKE_ERROR_429", 429),
        ("FAKE_ERROR_500", 502),
        ("FAKE_ERROR_503", 502),
    ],
)
def test_upstream_errors_map_to_status_and_keep_message(gateway: GatewayServer, trigger: str, status: int) -> None:
    with gateway.client() as client:
        for stream in (False, True):
            r = client.post(
                "/v1/chat/completions",
                json={"model": "gpt-fake", "stream": stream, "messages": [{"role": "user", "content": trigger}]},
            )
            assert r.status_code == status
            assert "fake upstream says" in r.json()["error"]["message"]
            assert UPSTREAM_KEY not in r.text


def test_sdk_sees_rate_limit_as_rate_limit(gateway: GatewayServer) -> None:
    with pytest.raises(openai.RateLimitError):
        sdk(gateway).chat.completions.create(model="gpt-fake", messages=[{"role": "user", "content": "FAKE_ERROR_429"}])


def test_connection_refused_is_502_and_timeout_is_504(gateway: GatewayServer) -> None:
    with gateway.client() as client:
        r = client.post("/v1/chat/completions", json={"model": "dead-fake", "messages": MESSAGES})
        assert r.status_code == 502 and r.json()["error"]["type"] == "upstream_error"
        r = client.post(
            "/v1/chat/completions", json={"model": "slow-fake", "messages": [{"role": "user", "content": "FAKE_SLOW"}]}
        )
        assert r.status_code == 504 and r.json()["error"]["code"] == "upstream_timeout"


def test_error_after_stream_started_is_an_sse_error_event(gateway: GatewayServer) -> None:
    with gateway.client() as client:
        r = client.post(
            "/v1/chat/completions",
            json={"model": "gpt-fake", "stream": True, "messages": [{"role": "user", "content": "FAKE_DROP"}]},
        )
    assert r.status_code == 200
    events = [e for e in r.text.split("\n\n") if e.startswith("data: ")]
    assert json.loads(events[0][6:])["choices"]
    last = json.loads(events[-1][6:])
    assert last["error"]["type"] == "upstream_error" and "[DONE]" not in r.text
    with pytest.raises(openai.APIError):
        list(
            sdk(gateway).chat.completions.create(
                model="gpt-fake", stream=True, messages=[{"role": "user", "content": "FAKE_DROP"}]
            )
        )


def test_client_disconnect_mid_stream_cancels_upstream(gateway: GatewayServer, upstream: FakeUpstream) -> None:
    with (
        httpx.Client(base_url=gateway.url, timeout=10) as client,
        client.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": "gpt-fake", "stream": True, "messages": [{"role": "user", "content": "FAKE_HANG_STREAM"}]},
        ) as r,
    ):
        first = next(r.iter_bytes())
        assert first.startswith(b"data: ")
    upstream.wait_for_disconnects(1, timeout=5)


def test_unknown_path_and_method(gateway: GatewayServer) -> None:
    with gateway.client() as client:
        r = client.get("/v1/nope")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found" and "x-trace-id" in r.headers
        r = client.get("/v1/chat/completions")
        assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_models_health_ready(gateway: GatewayServer) -> None:
    with gateway.client() as client:
        ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
        assert {"gpt-fake", "azure-fake", "claude-fake", "mock-gpt", "mock/echo"} <= set(ids)
        assert client.get("/models").json()["object"] == "list"
        assert client.get("/health").json() == {"status": "healthy"}
        assert client.get("/ready").status_code == 200
    assert [m.id for m in sdk(gateway).models.list()] == ids


def test_concurrent_streams_do_not_mix(gateway: GatewayServer) -> None:
    results: dict[int, str] = {}

    def run(i: int) -> None:
        stream = sdk(gateway).chat.completions.create(
            model="gpt-fake", stream=True, messages=[{"role": "user", "content": f"question {i}"}]
        )
        results[i] = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: fake_reply(f"question {i}") for i in range(8)}


@pytest.fixture
def lingering_upstream() -> Any:
    """Sends [DONE], then keeps the connection open a while, as real providers do."""
    import asyncio

    from aiohttp import web

    from tests.fakes.serving import run_aiohttp_in_thread

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for chunk in ODD_SSE:
            await resp.write(chunk)
        await asyncio.sleep(1.0)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    server = run_aiohttp_in_thread(app)
    yield server
    server.stop()


def test_client_hanging_up_after_done_is_a_complete_call(tmp_path: Path, lingering_upstream: Any) -> None:
    models = [
        {
            "model_name": "slow-close",
            "litellm_params": {"model": "openai/x", "api_base": lingering_upstream.url + "/v1"},
        }
    ]
    with GatewayServer(make_settings(tmp_path), model_config=model_config(models)) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(model="slow-close", messages=MESSAGES, stream=True)
        stream = raw.parse()
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "a\u00e9"
        stream.close()  # the SDK hangs up right after [DONE], before the upstream ends its response
        with gw.client() as http:
            trace = http.get(f"/api/traces/{raw.headers['x-trace-id']}").json()
    assert trace["status_code"] == 200 and trace["error_type"] is None
