"""Translated providers: an OpenAI client asks for a model served by an Anthropic-format upstream."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import httpx
import openai
import pytest

from llm_scope.providers.litellm_adapter import _clean_error_event, _error_event_failure, clean_message
from tests.conftest import UPSTREAM_KEY
from tests.fakes.upstream import FakeUpstream
from tests.fakes.wire import FAKE_PROMPT_TOKENS, fake_reply
from tests.gateway_server import GatewayServer

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi claude"}]


def client(gateway: GatewayServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)


def test_anthropic_upstream_non_stream(gateway: GatewayServer, upstream: FakeUpstream) -> None:
    completion = client(gateway).chat.completions.create(model="claude-fake", messages=MESSAGES, max_tokens=100)
    assert completion.choices[0].message.content == fake_reply("hi claude")
    assert completion.usage is not None and completion.usage.prompt_tokens >= FAKE_PROMPT_TOKENS
    sent = upstream.last_request()
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == UPSTREAM_KEY
    assert sent.json["model"] == "claude-haiku-4-5-20251001" and sent.json["system"]


def test_anthropic_upstream_stream(gateway: GatewayServer) -> None:
    chunks = list(
        client(gateway).chat.completions.create(model="claude-fake", messages=MESSAGES, stream=True, max_tokens=100)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == fake_reply("hi claude")


def test_anthropic_upstream_errors_keep_status(gateway: GatewayServer) -> None:
    with pytest.raises(openai.RateLimitError):
        client(gateway).chat.completions.create(
            model="claude-fake", max_tokens=10, messages=[{"role": "user", "content": "FAKE_ERROR_429"}]
        )
    with pytest.raises(openai.APIStatusError) as info:
        client(gateway).chat.completions.create(
            model="claude-fake", max_tokens=10, messages=[{"role": "user", "content": "FAKE_ERROR_500"}]
        )
    assert info.value.status_code == 502


LITELLM_TRACEBACK = (
    "litellm.APIConnectionError: No module named 'mcp'\nTraceback (most recent call last):\n"
    '  File "/srv/app/.venv/lib/python3.11/site-packages/litellm/responses/main.py", line 1329, in responses\n'
    "ModuleNotFoundError: No module named 'mcp'\n\nThis looks like a bug in LiteLLM rather than in your request. "
    "File it with one click: https://github.com/BerriAI/litellm/issues/new?template=bug_report.yml"
)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (LITELLM_TRACEBACK, "litellm.APIConnectionError: No module named 'mcp'"),
        (
            "AnthropicException - fake upstream says 500. Handle with `litellm.InternalServerError`.",
            "AnthropicException - fake upstream says 500.",
        ),
        ("failed in C:\\app\\lib\\site-packages\\litellm\\main.py line 3", "failed in <file> line 3"),
        ("bad at /opt/venv/lib/python3.11/site-packages/aiohttp/_http_parser.pyx", "bad at <file>"),
        ("see https://api.openai.com/v1/chat/completions", "see https://api.openai.com/v1/chat/completions"),
        ("x" * 1200, "x" * 999 + "…"),
    ],
)
def test_clean_message_keeps_what_went_wrong_not_how(raw: str, clean: str) -> None:
    assert clean_message(raw) == clean


def test_a_failure_inside_litellm_reaches_the_client_clean_and_the_log_whole(
    gateway: GatewayServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A message content LiteLLM's Responses translation does not expect (a number) fails inside LiteLLM: its
    message carries the traceback with our install paths. None of that may reach the client."""
    caplog.set_level(logging.WARNING, logger="llm_scope.providers")
    r = httpx.post(
        gateway.url + "/v1/responses",
        json={"model": "claude-fake", "input": [{"role": "user", "content": 5}]},
        timeout=30,
    )
    assert r.status_code == 502
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "upstream_error"
    assert "Traceback" not in r.text and ".py" not in r.text and "github.com" not in r.text
    assert sys.prefix not in r.text and str(Path(__file__).parents[2]) not in r.text
    logged = "\n".join(rec.getMessage() for rec in caplog.records if rec.name == "llm_scope.providers")
    assert "Traceback" in logged and "claude-fake" in logged


def test_litellm_error_events_mid_stream_are_cleaned_too() -> None:
    raw = json.dumps({"type": "error", "error": {"type": "api_error", "message": LITELLM_TRACEBACK}})
    cleaned = _clean_error_event(f"event: error\ndata: {raw}\n\n".encode())
    assert cleaned.startswith(b"event: error\ndata: ") and cleaned.endswith(b"\n\n")
    payload = json.loads(cleaned.partition(b"data: ")[2])
    assert payload["error"] == {"type": "api_error", "message": "litellm.APIConnectionError: No module named 'mcp'"}
    assert _clean_error_event(b"event: error\ndata: {not json\n\n") == b"event: error\ndata: {not json\n\n"


@pytest.mark.parametrize(
    ("kind", "message", "status"),
    [
        ("rate_limit_error", "litellm.RateLimitError: slow down", 429),
        ("authentication_error", "bad key", 401),
        ("invalid_request_error", "bad body", 400),
        ("timeout_error", "too slow", 504),
        ("overloaded_error", "busy", 502),  # a 5xx upstream is the gateway's 502, as everywhere
        ("api_error", "litellm.AuthenticationError: VertexException - API key not valid", 401),
        ("api_error", "litellm.MidStreamFallbackError: litellm.RateLimitError: x", 429),
        ("api_error", "litellm.ServiceUnavailableError: down", 502),
        ("api_error", "something else", 502),
    ],
)
def test_an_error_event_read_before_answering_keeps_its_status(kind: str, message: str, status: int) -> None:
    """LiteLLM's Messages translation reports a refusal as an `error` event; read before the first byte, it
    becomes the status the upstream meant (its type, else the LiteLLM exception it names)."""
    event = f"event: error\ndata: {json.dumps({'type': 'error', 'error': {'type': kind, 'message': message}})}\n\n"
    error = _error_event_failure(event.encode())
    assert error.status == status and error.message
    assert _error_event_failure(b"event: error\ndata: {not json\n\n").status == 502
