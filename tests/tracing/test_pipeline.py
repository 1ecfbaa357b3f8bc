"""Every call traced to Langfuse (a real OTLP receiver on loopback) and the local store, none ever lost."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import UPSTREAM_KEY, upstream_models
from tests.fakes.otlp_receiver import OtlpReceiver
from tests.fakes.upstream import FakeUpstream
from tests.fakes.wire import FAKE_CACHED_TOKENS, FAKE_PROMPT_TOKENS, FAKE_TOOL_ARGUMENTS, fake_reply, word_count
from tests.gateway_server import GatewayServer, make_settings, model_config
from tests.tracing.conftest import PK, SK

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def traced_gateway(tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver, **overrides: Any) -> GatewayServer:
    settings = make_settings(
        tmp_path, langfuse_public_key=PK, langfuse_secret_key=SK, langfuse_host=receiver.url, **overrides
    )
    return GatewayServer(settings, model_config=model_config(upstream_models(upstream)))


def chat(gw: GatewayServer, content: str = "hello trace", **body: Any) -> httpx.Response:
    with gw.client() as client:
        return client.post(
            "/v1/chat/completions",
            headers={"X-User-ID": "alice", "X-Session-ID": "sess-42"},
            json={"model": "gpt-fake", "messages": [{"role": "user", "content": content}], **body},
        )


def spans_of(receiver: OtlpReceiver, trace_id: str, timeout: float = 10.0) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while not (spans := receiver.spans_for_trace(trace_id)):
        assert time.monotonic() < deadline, f"trace {trace_id} did not reach Langfuse"
        time.sleep(0.02)
    # One span per call: the generation is the trace's root, so the trace shows its input and output.
    (span,) = spans
    assert span["parent_span_id"] is None
    return {span["attributes"]["langfuse.observation.type"]: span}


def stored(gw: GatewayServer, trace_id: str) -> dict[str, Any]:
    with gw.client() as client:
        r = client.get(f"/api/traces/{trace_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_non_stream_call_as_langfuse_and_the_local_store_see_it(
    tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver
) -> None:
    with traced_gateway(tmp_path, upstream, receiver) as gw:
        r = chat(gw, temperature=0.2, metadata={"ticket": "T-1"})
        trace_id = r.headers["x-trace-id"]
        spans = spans_of(receiver, trace_id)
        local = stored(gw, trace_id)
    gen = spans["generation"]["attributes"]
    assert gen["user.id"] == "alice" and gen["session.id"] == "sess-42"
    assert gen["langfuse.trace.name"] == "chat_completion"
    # httpx's own User-Agent: an agent attribution does not know keeps its name, and tags the trace with it.
    assert local["client"] == "python-httpx"
    assert set(gen["langfuse.trace.tags"]) == {"openai", "gpt-4o-mini", "chat_completion", "python-httpx"}
    assert gen["langfuse.internal.is_app_root"] is True
    assert gen["langfuse.observation.model.name"] == "gpt-4o-mini"
    assert json.loads(gen["langfuse.observation.model.parameters"]) == {"temperature": 0.2}
    assert json.loads(gen["langfuse.observation.input"]) == [{"role": "user", "content": "hello trace"}]
    assert json.loads(gen["langfuse.observation.output"])["content"] == fake_reply("hello trace")
    usage = json.loads(gen["langfuse.observation.usage_details"])
    out_tokens = word_count(fake_reply("hello trace"))
    assert usage == {  # disjoint buckets: Langfuse sums every "input" key into the input total
        "input": FAKE_PROMPT_TOKENS - FAKE_CACHED_TOKENS,
        "input_cached_tokens": FAKE_CACHED_TOKENS,
        "output": out_tokens,
        "total": FAKE_PROMPT_TOKENS + out_tokens,
    }
    cost = json.loads(gen["langfuse.observation.cost_details"])
    assert set(cost) == set(usage)
    assert cost["total"] == pytest.approx(sum(v for k, v in cost.items() if k != "total")) and cost["total"] > 0
    assert gen["langfuse.trace.metadata.ticket"] == "T-1"
    headers = receiver.requests[-1].headers
    assert headers["x-langfuse-ingestion-version"] == "4" and headers["content-encoding"] == "gzip"
    # The local store holds the same call.
    assert local["trace_id"] == trace_id and local["user_id"] == "alice" and local["session_id"] == "sess-42"
    assert local["resolved_model"] == "gpt-4o-mini" and local["requested_model"] == "gpt-fake"
    assert local["input_tokens"] == FAKE_PROMPT_TOKENS and local["cost_total"] == pytest.approx(cost["total"])
    assert local["output"]["content"] == fake_reply("hello trace") and local["status_code"] == 200


def test_stream_and_tool_call_outputs_are_assembled_with_first_token_time(
    tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver
) -> None:
    with traced_gateway(tmp_path, upstream, receiver) as gw:
        text_id = chat(gw, stream=True).headers["x-trace-id"]
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-fake", messages=[{"role": "user", "content": "weather?"}], tools=TOOLS, stream=True
        )
        list(raw.parse())
        tool_id = raw.headers["x-trace-id"]
        text, tool = spans_of(receiver, text_id)["generation"], spans_of(receiver, tool_id)["generation"]
        local = stored(gw, text_id)
    attrs = text["attributes"]
    assert json.loads(attrs["langfuse.observation.output"])["content"] == fake_reply("hello trace")
    usage = json.loads(attrs["langfuse.observation.usage_details"])
    assert usage["input"] + usage.get("input_cached_tokens", 0) == FAKE_PROMPT_TOKENS
    first_token = json.loads(attrs["langfuse.observation.completion_start_time"])
    assert first_token.endswith("Z") and local["ttft_ms"] is not None and local["ttft_ms"] >= 0
    calls = json.loads(tool["attributes"]["langfuse.observation.output"])["tool_calls"]
    assert calls[0]["function"]["name"] == "get_weather"
    assert json.loads(calls[0]["function"]["arguments"]) == json.loads(FAKE_TOOL_ARGUMENTS)
    assert json.loads(tool["attributes"]["langfuse.observation.input"])["tools"] == TOOLS


def test_failures_are_traced_as_errors(tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver) -> None:
    with traced_gateway(tmp_path, upstream, receiver) as gw:
        limited = chat(gw, "FAKE_ERROR_429")
        unknown = chat(gw, model="no-such-model")
        dropped = chat(gw, "FAKE_DROP", stream=True)
        ids = [r.headers["x-trace-id"] for r in (limited, unknown, dropped)]
        gens = [spans_of(receiver, i)["generation"]["attributes"] for i in ids]
        local = [stored(gw, i) for i in ids]
    assert [g["langfuse.observation.level"] for g in gens] == ["ERROR"] * 3
    assert "fake upstream says 429" in gens[0]["langfuse.observation.status_message"]
    assert [row["status_code"] for row in local] == [429, 404, 502]
    assert local[1]["error_type"] == "model_not_found"


def test_client_disconnect_is_recorded(tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver) -> None:
    with traced_gateway(tmp_path, upstream, receiver) as gw:
        with (
            httpx.Client(base_url=gw.url, timeout=10) as client,
            client.stream(
                "POST",
                "/v1/chat/completions",
                json={
                    "model": "gpt-fake",
                    "stream": True,
                    "messages": [{"role": "user", "content": "FAKE_HANG_STREAM"}],
                },
            ) as r,
        ):
            trace_id = r.headers["x-trace-id"]
            next(r.iter_bytes())
        gen = spans_of(receiver, trace_id)["generation"]["attributes"]
        local = stored(gw, trace_id)
    assert local["status_code"] == 499 and local["error_type"] == "client_disconnected"
    assert gen["langfuse.observation.level"] == "ERROR"


def test_read_api_filters_sessions_usage_and_scores(
    tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver
) -> None:
    with traced_gateway(tmp_path, upstream, receiver) as gw:
        first = chat(gw).headers["x-trace-id"]
        with gw.client() as client:
            client.post(
                "/v1/chat/completions",
                headers={"X-User-ID": "bob", "X-Session-ID": "sess-b"},
                json={"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]},
            )
            chat(gw, "FAKE_ERROR_400")
            stored(gw, first)  # flushes
            all_rows = client.get("/api/traces").json()
            assert all_rows["total"] == 3
            assert [t["user_id"] for t in client.get("/api/traces", params={"user": "bob"}).json()["data"]] == ["bob"]
            assert client.get("/api/traces", params={"session": "sess-42"}).json()["total"] == 2
            assert client.get("/api/traces", params={"model": "mock-gpt"}).json()["total"] == 1
            assert client.get("/api/traces", params={"status": "error"}).json()["total"] == 1
            assert client.get("/api/traces", params={"status": "400"}).json()["total"] == 1
            assert client.get("/api/traces", params={"since": time.time() + 60}).json()["total"] == 0
            page = client.get("/api/traces", params={"limit": 1, "offset": 1}).json()
            assert len(page["data"]) == 1 and page["data"][0]["trace_id"] == all_rows["data"][1]["trace_id"]
            assert client.get("/api/traces", params={"since": "yesterday"}).status_code == 400
            sessions = {s["session_id"]: s for s in client.get("/api/sessions").json()["data"]}
            assert sessions["sess-42"]["calls"] == 2 and sessions["sess-b"]["calls"] == 1
            usage = client.get("/api/usage").json()
            by_model = {row["model"]: row for row in usage["by_model"]}
            assert by_model["gpt-4o-mini"]["calls"] == 2  # one answered, one failed upstream
            assert by_model["gpt-4o-mini"]["input_tokens"] == FAKE_PROMPT_TOKENS
            assert {row["user"] for row in usage["by_user"]} == {"alice", "bob"}
            assert usage["total"]["calls"] == 3
            r = client.post(f"/api/traces/{first}/scores", json={"name": "helpful", "value": 1, "comment": "good"})
            assert r.status_code == 201
            assert client.post(f"/api/traces/{first}/scores", json={"name": "x"}).status_code == 400
            assert client.post("/api/traces/" + "0" * 32 + "/scores", json={"name": "x", "value": 1}).status_code == 404
            assert client.get("/api/traces/" + "0" * 32).status_code == 404
            assert stored(gw, first)["scores"][0]["name"] == "helpful"
        score = receiver.wait_for_scores(1, timeout=10)[0]
    assert score["traceId"] == first and score["name"] == "helpful" and score["value"] == 1


@pytest.mark.parametrize("mode", ["500", "503", "429", "down"])
def test_langfuse_outage_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver, mode: str
) -> None:
    if mode == "down":
        receiver.stop()
    else:
        receiver.set_mode(mode)
    with traced_gateway(tmp_path, upstream, receiver) as gw:
        ids = [chat(gw, f"call {i}", stream=i % 2 == 0).headers["x-trace-id"] for i in range(6)]
        time.sleep(1.0)  # the exporter tries (and fails) meanwhile
        assert not any(receiver.spans_for_trace(i) for i in ids)
        # During an outage the records wait on disk only (the helper reports its count every second).
        deadline = time.monotonic() + 3
        while gw.app.state.pipeline.held_records and time.monotonic() < deadline:
            time.sleep(0.1)
        assert gw.app.state.pipeline.held_records == 0
        if mode == "down":
            receiver.start()
        else:
            receiver.set_mode("ok")
        for trace_id in ids:
            spans_of(receiver, trace_id, timeout=20)
    counts = Counter(s["span_id"] for s in receiver.spans())
    assert all(c == 1 for c in counts.values()), "a span was delivered twice"
    assert len(counts) == len(ids)


def test_restart_while_langfuse_is_down_delivers_everything_once(
    tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver
) -> None:
    receiver.stop()
    with traced_gateway(tmp_path, upstream, receiver) as gw:
        ids = [chat(gw, f"before restart {i}").headers["x-trace-id"] for i in range(5)]
    receiver.start()
    with traced_gateway(tmp_path, upstream, receiver) as gw:
        ids.append(chat(gw, "after restart").headers["x-trace-id"])
        for trace_id in ids:
            spans_of(receiver, trace_id, timeout=20)
    counts = Counter(s["span_id"] for s in receiver.spans())
    assert len(counts) == 6 and set(counts.values()) == {1}


def test_stuck_export_does_not_hold_up_requests(tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver) -> None:
    receiver.set_mode("hang")
    with traced_gateway(tmp_path, upstream, receiver) as gw, gw.client() as client:
        statuses = Counter(
            client.post(
                "/v1/chat/completions",
                json={"model": "mock-gpt", "stream": i % 2 == 0, "messages": [{"role": "user", "content": str(i)}]},
            ).status_code
            for i in range(300)
        )
        assert statuses == {200: 300}
        assert receiver.spans() == []  # nothing acknowledged while Langfuse hangs ...
        assert client.get("/api/traces").json()["total"] == 300  # ... yet every call is stored locally
        receiver.set_mode("ok")


def test_content_off_and_secrets_never_reach_a_trace(
    tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver
) -> None:
    leaked = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX0123"
    with traced_gateway(tmp_path / "a", upstream, receiver) as gw:
        trace_id = chat(gw, f"my key is {leaked}", metadata={"api_key": "hunter2-secret"}).headers["x-trace-id"]
        attrs = spans_of(receiver, trace_id)["generation"]["attributes"]
        local = stored(gw, trace_id)
    everything = json.dumps(attrs) + json.dumps(local)
    assert leaked not in everything and UPSTREAM_KEY not in everything and "hunter2-secret" not in everything
    assert "[REDACTED]" in attrs["langfuse.observation.input"]
    with traced_gateway(tmp_path / "b", upstream, receiver, trace_content=False) as gw:
        trace_id = chat(gw, "private prompt").headers["x-trace-id"]
        attrs = spans_of(receiver, trace_id)["generation"]["attributes"]
        local = stored(gw, trace_id)
    assert "langfuse.observation.input" not in attrs and "langfuse.observation.output" not in attrs
    usage = json.loads(attrs["langfuse.observation.usage_details"])
    assert usage["input"] + usage.get("input_cached_tokens", 0) == FAKE_PROMPT_TOKENS
    assert local["input"] is None and local["output"] is None and local["input_tokens"] == FAKE_PROMPT_TOKENS
