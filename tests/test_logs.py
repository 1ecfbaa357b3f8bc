"""LOG_FORMAT=json: one JSON line per request, with the fields log pipelines need, and never a secret.

A real gateway runs in-process in front of the fake upstream. Log output is captured with the gateway's own
JsonFormatter (and its text format) on the root logger at DEBUG, so every line any logger emits is checked,
not only the call lines. Prompts carry a client's OpenAI-style key and the deployment holds a known upstream
key (UPSTREAM_KEY); neither may appear anywhere in the logs, including DEBUG_MODE body logging.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_scope.accounting.redact import REDACTED
from llm_scope.logs import CALL_LOGGER, JsonFormatter
from tests.conftest import UPSTREAM_KEY, upstream_models
from tests.fakes.upstream import FAKE_PROMPT_TOKENS, FakeUpstream, trigger_error
from tests.gateway_server import GatewayServer, make_settings, model_config

# What a user pastes into a prompt by mistake: "sk-proj-" and 24 alphanumerics.
CLIENT_KEY = "sk-proj-" + "Zq8Xw3Vu" * 3
PROMPT = f"please debug this, my key is {CLIENT_KEY} and it fails"
CALL_FIELDS = {"trace_id", "model", "status", "input_tokens", "output_tokens", "cost_usd", "duration_ms"}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # the gateway's LOG_FORMAT=text


@dataclass
class Captured:
    json_out: io.StringIO = field(default_factory=io.StringIO)
    text_out: io.StringIO = field(default_factory=io.StringIO)
    helper_err: str = ""  # what the trace helper process wrote to stderr, in the settings' LOG_FORMAT

    def lines(self) -> list[dict[str, Any]]:
        """Every line must be one JSON object (pytest's own output aside, on the shared stderr)."""
        helper = [line for line in self.helper_err.splitlines() if line.startswith("{")]
        out = []
        for line in self.json_out.getvalue().splitlines() + helper:
            parsed = json.loads(line)
            assert isinstance(parsed, dict), line
            out.append(parsed)
        return out

    def calls(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["logger"] == CALL_LOGGER]

    def everything(self) -> str:
        return self.json_out.getvalue() + self.text_out.getvalue() + self.helper_err


@contextmanager
def captured_logs(capfd: pytest.CaptureFixture[str]) -> Iterator[Captured]:
    """Root handlers in both formats, and the gateway's loggers at DEBUG, restored afterwards; and the trace
    helper's stderr (a child process: its lines, the call lines among them, reach file descriptor 2)."""
    captured = Captured()
    json_handler = logging.StreamHandler(captured.json_out)
    json_handler.setFormatter(JsonFormatter())
    text_handler = logging.StreamHandler(captured.text_out)
    text_handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    gateway_logger = logging.getLogger("llm_scope")
    previous = gateway_logger.level
    for handler in (json_handler, text_handler):
        handler.setLevel(logging.DEBUG)
        root.addHandler(handler)
    gateway_logger.setLevel(logging.DEBUG)
    try:
        yield captured
    finally:
        captured.helper_err = capfd.readouterr().err
        gateway_logger.setLevel(previous)
        for handler in (json_handler, text_handler):
            root.removeHandler(handler)


def chat(client: httpx.Client, model: str, content: str, *, stream: bool = False) -> httpx.Response:
    response = client.post(
        "/v1/chat/completions",
        json={"model": model, "stream": stream, "messages": [{"role": "user", "content": content}]},
    )
    response.read()
    return response


def assert_no_secret(captured: Captured) -> None:
    text = captured.everything()
    assert text, "nothing was logged"
    for secret in (CLIENT_KEY, UPSTREAM_KEY):
        assert secret not in text, "a key reached the logs"
    # Nor a recognisable piece of one (a key cut in half is still a leak).
    assert CLIENT_KEY[8:] not in text and UPSTREAM_KEY[3:] not in text


def test_json_log_has_one_line_per_request_with_the_call_fields(
    tmp_path: Path, upstream: FakeUpstream, capfd: pytest.CaptureFixture[str]
) -> None:
    upstream.reset()
    settings = make_settings(tmp_path, log_format="json")
    config = model_config(upstream_models(upstream))
    with captured_logs(capfd) as captured, GatewayServer(settings, model_config=config) as gw, gw.client() as client:
        answered = chat(client, "gpt-fake", PROMPT)
        streamed = chat(client, "gpt-fake", PROMPT, stream=True)
        unknown = chat(client, "no-such-model", PROMPT)
        failed = chat(client, "gpt-fake", f"{trigger_error(500)} {PROMPT}")
        mock = chat(client, "mock-gpt", PROMPT)
        client.get("/api/traces")  # waits for the trace helper, which logs the calls once stored
    assert [r.status_code for r in (answered, streamed, unknown, failed, mock)] == [200, 200, 404, 502, 200]
    # The upstream really was called with the deployment's key, so the key was in play.
    assert any(r.headers.get("authorization") == f"Bearer {UPSTREAM_KEY}" for r in upstream.requests)

    calls = captured.calls()
    responses = {"answered": answered, "streamed": streamed, "unknown": unknown, "failed": failed, "mock": mock}
    trace_ids = {name: r.headers["x-trace-id"] for name, r in responses.items()}
    assert sorted(c["trace_id"] for c in calls) == sorted(trace_ids.values()), "exactly one line per request"
    by_id = {c["trace_id"]: c for c in calls}
    for name, trace_id in trace_ids.items():
        line = by_id[trace_id]
        assert line.keys() >= CALL_FIELDS, name
        assert line["level"] == "info" and line["status"] == responses[name].status_code, name
        assert isinstance(line["duration_ms"], int | float) and line["duration_ms"] >= 0, name
        assert isinstance(line["input_tokens"], int) and isinstance(line["output_tokens"], int), name

    ok = by_id[trace_ids["answered"]]
    assert ok["model"] == "gpt-fake" and ok["resolved_model"] == "gpt-4o-mini" and ok["provider"] == "openai"
    assert ok["input_tokens"] == FAKE_PROMPT_TOKENS and ok["output_tokens"] > 0
    assert ok["cost_usd"] > 0 and ok["stream"] is False and ok["error_type"] is None
    stream_line = by_id[trace_ids["streamed"]]
    assert stream_line["stream"] is True and stream_line["output_tokens"] > 0 and stream_line["cost_usd"] > 0
    missing = by_id[trace_ids["unknown"]]
    assert missing["model"] == "no-such-model" and missing["error_type"] == "model_not_found"
    assert missing["input_tokens"] == 0 and missing["cost_usd"] is None
    assert by_id[trace_ids["failed"]]["error_type"] is not None
    assert by_id[trace_ids["mock"]]["cost_usd"] is None  # unknown price is not free: null, not 0

    # Debug mode is off: no request or response bodies, even with the loggers at DEBUG.
    assert "please debug this" not in captured.everything()
    assert_no_secret(captured)


def test_debug_mode_logs_bodies_with_keys_redacted(
    tmp_path: Path, upstream: FakeUpstream, capfd: pytest.CaptureFixture[str]
) -> None:
    upstream.reset()
    settings = make_settings(tmp_path, log_format="json", debug_mode=True)
    config = model_config(upstream_models(upstream))
    with captured_logs(capfd) as captured, GatewayServer(settings, model_config=config) as gw, gw.client() as client:
        answered = chat(client, "gpt-fake", PROMPT)
        streamed = chat(client, "gpt-fake", PROMPT, stream=True)
        client.get("/api/traces")
    assert answered.status_code == 200 and streamed.status_code == 200
    # The fake upstream echoes the prompt, so the answer carries the client's key too.
    assert CLIENT_KEY in answered.text

    lines = captured.lines()
    for response in (answered, streamed):
        trace_id = response.headers["x-trace-id"]
        debug = [x for x in lines if x["level"] == "debug" and trace_id in x["message"]]
        request_line = next(x["message"] for x in debug if x["message"].startswith(f"request {trace_id}"))
        response_line = next(x["message"] for x in debug if x["message"].startswith(f"response {trace_id}"))
        assert "please debug this, my key is [REDACTED] and it fails" in request_line
        assert REDACTED in response_line and "Hello from fake upstream" in response_line
        assert [c["trace_id"] for c in captured.calls()].count(trace_id) == 1
    assert_no_secret(captured)
