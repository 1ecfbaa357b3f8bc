"""OpenTelemetry GenAI export end to end: a gateway, a real OTLP receiver on loopback beside the fake Langfuse,
each backend with its own lane in the durable outbox, so one being down neither loses nor holds up the other."""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import UPSTREAM_KEY, upstream_models
from tests.fakes.otlp_receiver import TRACES_PATH, OtlpReceiver, start_otlp_receiver
from tests.fakes.upstream import FakeUpstream
from tests.fakes.wire import FAKE_CACHED_TOKENS, FAKE_PROMPT_TOKENS
from tests.gateway_server import GatewayServer, make_settings, model_config
from tests.tracing.conftest import PK, SK

OTEL_TOKEN = "otel-ingest-token-0123456789"


def gateway(
    tmp_path: Path, upstream: FakeUpstream, langfuse: OtlpReceiver, otel_port: int, **extra: Any
) -> GatewayServer:
    settings = make_settings(
        tmp_path,
        langfuse_public_key=PK,
        langfuse_secret_key=SK,
        langfuse_host=langfuse.url,
        otel_traces_endpoint=f"http://127.0.0.1:{otel_port}{TRACES_PATH}",
        otel_headers=f"x-api-key={OTEL_TOKEN}",
        otel_service_name="team-gateway",
        **extra,
    )
    return GatewayServer(settings, model_config=model_config(upstream_models(upstream)))


def chat(gw: GatewayServer, content: str) -> str:
    with gw.client() as client:
        r = client.post(
            "/v1/chat/completions",
            headers={"X-User-ID": "alice", "X-Session-ID": "sess-7"},
            json={"model": "gpt-fake", "messages": [{"role": "user", "content": content}], "temperature": 0.3},
        )
    assert r.status_code == 200, r.text
    return str(r.headers["x-trace-id"])


def wait_for(receiver: OtlpReceiver, ids: list[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while missing := [i for i in ids if not receiver.spans_for_trace(i)]:
        assert time.monotonic() < deadline, f"{len(missing)} of {len(ids)} calls never reached {receiver.url}"
        time.sleep(0.05)


@pytest.fixture
def otel() -> Any:
    r = start_otlp_receiver()
    yield r
    if r.running:
        r.stop()


def test_calls_reach_an_otel_backend_as_genai_spans(
    tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver, otel: OtlpReceiver
) -> None:
    with gateway(tmp_path, upstream, receiver, otel.port) as gw:
        trace_id = chat(gw, "hello otel")
        wait_for(otel, [trace_id])
        wait_for(receiver, [trace_id])
    (span,) = otel.spans_for_trace(trace_id)
    attrs = span["attributes"]
    assert span["name"] == "chat gpt-fake" and span["scope"] == "llm_scope" and span["parent_span_id"] is None
    assert span["resource"]["service.name"] == "team-gateway"
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-fake" and attrs["gen_ai.response.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.request.temperature"] == 0.3
    assert attrs["gen_ai.usage.input_tokens"] == FAKE_PROMPT_TOKENS  # the whole prompt, cache included
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == FAKE_CACHED_TOKENS
    assert attrs["gen_ai.conversation.id"] == "sess-7" and attrs["user.id"] == "alice"
    assert attrs["server.address"] == "127.0.0.1" and attrs["server.port"] == upstream.port
    assert "gen_ai.input.messages" not in attrs  # content is opt-in for OTel backends
    request = otel.requests[-1]
    assert request.headers["x-api-key"] == OTEL_TOKEN and request.gzipped
    # The same call, the same trace id, in Langfuse.
    assert receiver.spans_for_trace(trace_id)[0]["attributes"]["langfuse.observation.type"] == "generation"
    text = json.dumps(stored_rows(tmp_path), default=str)
    assert OTEL_TOKEN not in text and UPSTREAM_KEY not in text  # secrets never reach a database row


def test_an_otel_outage_loses_nothing_and_does_not_hold_up_langfuse(
    tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver, otel: OtlpReceiver
) -> None:
    port = otel.port
    otel.stop()
    with gateway(tmp_path, upstream, receiver, port, otel_capture_content=True) as gw:
        ids = [chat(gw, f"during the outage {i}") for i in range(6)]
        wait_for(receiver, ids)  # Langfuse gets everything while the OTel backend is down
    otel.start(port)
    with gateway(tmp_path, upstream, receiver, port, otel_capture_content=True) as gw:
        ids.append(chat(gw, "after the restart"))
        wait_for(otel, ids)
    counts = Counter(s["span_id"] for s in otel.spans())
    assert len(counts) == len(ids) and set(counts.values()) == {1}  # every call once
    attrs = otel.spans_for_trace(ids[0])[0]["attributes"]
    assert json.loads(attrs["gen_ai.input.messages"]) == [{"role": "user", "content": "during the outage 0"}]


def stored_rows(tmp_path: Path) -> list[list[Any]]:
    db = sqlite3.connect(tmp_path / "data" / "llm-scope.db")
    try:
        return [list(row) for table in ("traces", "outbox") for row in db.execute(f"SELECT * FROM {table}")]
    finally:
        db.close()


def test_grpc_is_refused_with_a_clear_message(tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver) -> None:
    with (
        pytest.raises(ValueError, match="http/protobuf"),
        gateway(tmp_path, upstream, receiver, 4317, otel_protocol="grpc"),
    ):
        pass
