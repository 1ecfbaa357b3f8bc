"""The entry layer every request passes: CORS around API calls, methods, trace ids, body limits."""

from __future__ import annotations

import json
import socket
import struct
import time
from pathlib import Path

import httpx

from tests.conftest import upstream_models
from tests.fakes.upstream import FakeUpstream
from tests.gateway_server import GatewayServer, make_settings, model_config
from tests.polling import wait_until as wait_for

ORIGIN = "https://ide.example"
BODY = {"model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}]}


def test_cors_wraps_api_calls_and_the_rest(tmp_path: Path, upstream: FakeUpstream) -> None:
    settings = make_settings(tmp_path, cors_origins=ORIGIN)
    with GatewayServer(settings, model_config=model_config(upstream_models(upstream))) as gw:
        preflight = httpx.options(
            gw.url + "/v1/chat/completions",
            headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        call = httpx.post(gw.url + "/v1/chat/completions", json=BODY, headers={"Origin": ORIGIN})
        assert call.status_code == 200
        assert call.headers["access-control-allow-origin"] == ORIGIN
        assert "x-trace-id" in call.headers["access-control-expose-headers"]
        assert len(call.headers["x-trace-id"]) == 32
        health = httpx.get(gw.url + "/health", headers={"Origin": ORIGIN})
        assert health.headers["access-control-allow-origin"] == ORIGIN
        other = httpx.post(gw.url + "/v1/chat/completions", json=BODY, headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_wrong_method_on_an_api_path_is_405_in_the_api_shape(gateway: GatewayServer) -> None:
    chat = httpx.get(gateway.url + "/v1/chat/completions")
    assert chat.status_code == 405
    assert chat.json()["error"]["code"] == "method_not_allowed"
    assert len(chat.headers["x-trace-id"]) == 32
    messages = httpx.put(gateway.url + "/v1/messages", json={})
    assert messages.status_code == 405 and messages.json()["type"] == "error"


def test_trace_ids_are_unique_and_match_the_stored_trace(gateway: GatewayServer) -> None:
    ids = {httpx.post(gateway.url + "/v1/chat/completions", json=BODY).headers["x-trace-id"] for _ in range(300)}
    assert len(ids) == 300 and all(len(i) == 32 and int(i, 16) for i in ids)
    one = next(iter(ids))
    assert httpx.get(f"{gateway.url}/api/traces/{one}").json()["trace_id"] == one


def test_trace_ids_lead_with_the_time_and_end_random() -> None:
    """Time-ordered ids keep the store's id index append-mostly; the random tail keeps them unguessable."""
    from llm_scope.http.entry import TraceIds

    ids = TraceIds()
    before = time.time_ns() // 1_000_000
    made = [ids.new() for _ in range(1000)]  # more than one 4 KB buffer of random bytes
    after = time.time_ns() // 1_000_000
    assert all(len(i) == 32 and i == i.lower() and int(i, 16) for i in made)
    assert len(set(made)) == 1000 and len({i[12:] for i in made}) == 1000
    assert all(before <= int(i[:12], 16) <= after for i in made)
    assert [i[:12] for i in made] == sorted(i[:12] for i in made)
    time.sleep(0.002)
    assert ids.new() > max(made)  # a later millisecond sorts after every earlier id


def _data_segments_received(sock: socket.socket) -> int:
    """tcp_info.tcpi_data_segs_in (Linux 4.6+): segments that carried data, pure ACKs left out."""
    return int(struct.unpack_from("I", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256), 152)[0])


def _read_answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_whole_answer_leaves_in_one_tcp_segment(gateway: GatewayServer) -> None:
    """Head and body go out in one write: uvicorn writes them apart, and the second segment woke the client
    (and cost the gateway a system call) again on every call. Successes and errors alike."""
    host, port = gateway.url.removeprefix("http://").split(":")
    segments = []
    with socket.create_connection((host, int(port))) as sock:
        for body in (BODY, BODY, {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}, BODY):
            payload = json.dumps(body).encode()
            before = _data_segments_received(sock)
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
            )
            answer = _read_answer(sock)
            assert answer.startswith(b"HTTP/1.1 200" if body is BODY else b"HTTP/1.1 404"), answer[:100]
            assert b"x-trace-id: " in answer and answer.endswith(b"}")
            segments.append(_data_segments_received(sock) - before)
    assert segments == [1, 1, 1, 1]


def test_a_client_that_leaves_mid_body_frees_its_slot(tmp_path: Path, upstream: FakeUpstream) -> None:
    """One call at a time and no queue: had the departed client kept its admission slot, the next call
    would be refused with 503."""
    settings = make_settings(tmp_path, max_concurrency=1, max_queue=0)
    with GatewayServer(settings, model_config=model_config(upstream_models(upstream))) as gw:
        host, port = gw.url.removeprefix("http://").split(":")
        admission = gw.app.admission
        assert admission is not None
        for _ in range(3):
            with socket.create_connection((host, int(port))) as sock:
                sock.sendall(
                    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b'Content-Length: 1000\r\n\r\n{"model":'
                )
                wait_for(lambda: admission.active == 1, "the half-sent call holds the one slot")
            wait_for(lambda: admission.active == 0, "the departed client's slot is free again")
            assert httpx.post(gw.url + "/v1/chat/completions", json=BODY).status_code == 200
