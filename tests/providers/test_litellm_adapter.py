"""Translated providers: an OpenAI client asks for a model served by an Anthropic-format upstream."""

from __future__ import annotations

import openai
import pytest

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
