"""The Provider conformance suite: every provider kind answers the same contract against a real upstream on
loopback (the mock needs none). A new provider is done when it passes these.

The contract: a whole answer and a stream in the wire format of the API it was called for, with the usage the
upstream reported; an upstream's refusal keeps its status (a 429 stays a 429); a timeout is a GatewayError,
never a hang; closing a stream early lets go of the upstream connection.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from llm_scope.accounting.usage import anthropic_usage, merge, openai_usage
from llm_scope.errors import GatewayError
from llm_scope.providers.anthropic_compat import AnthropicCompatProvider
from llm_scope.providers.base import ApiName, CallOptions, Provider, UpstreamResponse
from llm_scope.providers.litellm_adapter import LiteLLMProvider
from llm_scope.providers.mock import MockProvider
from llm_scope.providers.openai_compat import OpenAICompatProvider
from llm_scope.providers.upstream_http import UpstreamHTTP
from llm_scope.types import Deployment, Usage
from tests.conftest import UPSTREAM_KEY
from tests.fakes.bedrock import ACCESS_KEY, REGION, SECRET_KEY
from tests.fakes.gemini import GEMINI_KEY, FakeGemini
from tests.fakes.google_oauth import ServiceAccount
from tests.fakes.upstream import FakeUpstream
from tests.fakes.wire import FAKE_PROMPT_TOKENS, fake_reply


@dataclass(frozen=True)
class Kind:
    """One provider kind: how to build it, a deployment on the fake, and how to read its wire format."""

    make: Callable[[], Provider]
    api: ApiName
    deployment: Callable[[FakeUpstream], Deployment]
    upstream: bool  # False: answers without one (the mock), so upstream failures do not apply
    fake: str = "upstream"  # the fixture of the fake it talks to (tests/providers/conftest.py for the others)

    def body(self, text: str, *, stream: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"model": "x", "max_tokens": 200, "messages": [{"role": "user", "content": text}]}
        if stream:
            body["stream"] = True
            if self.api == "chat":
                body["stream_options"] = {"include_usage": True}
        return body

    def text_and_usage(self, response: UpstreamResponse, chunks: list[bytes]) -> tuple[str, Usage]:
        if response.chunks is None:
            obj = json.loads(response.body)
            if self.api == "messages":
                return "".join(b.get("text", "") for b in obj["content"]), anthropic_usage(obj["usage"])
            return obj["choices"][0]["message"]["content"], openai_usage(obj["usage"])
        text, usage = "", Usage()
        for event in b"".join(chunks).split(b"\n\n"):
            data = next((line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")), b"")
            if not data or data == b"[DONE]":
                continue
            obj = json.loads(data)
            if self.api == "messages":
                text += (obj.get("delta") or {}).get("text", "") if obj["type"] == "content_block_delta" else ""
                usage = merge(usage, anthropic_usage((obj.get("message") or obj).get("usage")))
            else:
                text += "".join((c.get("delta") or {}).get("content") or "" for c in obj.get("choices") or [])
                usage = merge(usage, openai_usage(obj.get("usage")))
        return text, usage


HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
AWS = {"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY, "aws_region_name": REGION}


def _bedrock(route: str) -> Callable[[FakeUpstream], Deployment]:
    return lambda up: Deployment("m", "bedrock", f"{route}/{HAIKU}", api_base=up.url, params=AWS)


def _gemini(up: FakeUpstream) -> Deployment:
    return Deployment("m", "gemini", "gemini-2.5-flash", api_base=up.url + "/v1beta", api_key=GEMINI_KEY)


@functools.cache
def _vertex_account() -> ServiceAccount:
    return ServiceAccount.create("vertex-conformance")


def _vertex(model: str, location: str) -> Callable[[FakeUpstream], Deployment]:
    """A Vertex deployment as a LiteLLM config names one: project, location, a service-account key whose grants the
    fake's token endpoint honours, and `api_base` putting the fake where LiteLLM's Vertex host would be."""

    def deployment(up: FakeUpstream) -> Deployment:
        assert isinstance(up, FakeGemini)
        account = _vertex_account()
        up.oauth.trust(account)
        params = {
            "vertex_project": account.project_id,
            "vertex_location": location,
            "vertex_credentials": json.dumps(account.info(up.token_uri)),
        }
        return Deployment("m", "vertex_ai", model, api_base=up.url, params=params)

    return deployment


_VERTEX_GEMINI = _vertex("gemini-2.5-flash", "us-central1")
_VERTEX_CLAUDE = _vertex("claude-haiku-4-5@20251001", "us-east5")


def _http() -> UpstreamHTTP:
    return UpstreamHTTP()


KINDS: dict[str, Kind] = {
    "openai_compat": Kind(
        lambda: OpenAICompatProvider(_http()),
        "chat",
        lambda up: Deployment("m", "openai", "gpt-4o-mini", api_base=up.openai_base_url, api_key=UPSTREAM_KEY),
        True,
    ),
    "openai_compat-azure": Kind(
        lambda: OpenAICompatProvider(_http()),
        "chat",
        lambda up: Deployment("m", "azure", "my-deployment", api_base=up.url, api_key=UPSTREAM_KEY),
        True,
    ),
    "anthropic_compat": Kind(
        lambda: AnthropicCompatProvider(_http()),
        "messages",
        lambda up: Deployment("m", "anthropic", "claude-haiku-4-5", api_base=up.url, api_key=UPSTREAM_KEY),
        True,
    ),
    "litellm_adapter": Kind(  # chat completions translated to an Anthropic-format upstream
        LiteLLMProvider,
        "chat",
        lambda up: Deployment("m", "anthropic", "claude-haiku-4-5", api_base=up.url, api_key=UPSTREAM_KEY),
        True,
    ),
    "mock": Kind(MockProvider, "chat", lambda up: Deployment("m", "mock", "mock-gpt"), False),
    # LiteLLM's translation to providers that speak neither format, against fakes of their own wire.
    "litellm_adapter-bedrock-converse": Kind(LiteLLMProvider, "chat", _bedrock("converse"), True, "bedrock_fake"),
    "litellm_adapter-bedrock-invoke-messages": Kind(
        LiteLLMProvider, "messages", _bedrock("invoke"), True, "bedrock_fake"
    ),
    "litellm_adapter-gemini": Kind(LiteLLMProvider, "chat", _gemini, True, "gemini_fake"),
    "litellm_adapter-gemini-messages": Kind(LiteLLMProvider, "messages", _gemini, True, "gemini_fake"),
    "litellm_adapter-vertex-gemini": Kind(LiteLLMProvider, "chat", _VERTEX_GEMINI, True, "gemini_fake"),
    "litellm_adapter-vertex-gemini-messages": Kind(LiteLLMProvider, "messages", _VERTEX_GEMINI, True, "gemini_fake"),
    "litellm_adapter-vertex-claude": Kind(LiteLLMProvider, "chat", _VERTEX_CLAUDE, True, "gemini_fake"),
    "litellm_adapter-vertex-claude-messages": Kind(LiteLLMProvider, "messages", _VERTEX_CLAUDE, True, "gemini_fake"),
}
OPTIONS = CallOptions(timeout=10.0, connect_timeout=5.0)


@pytest.fixture(params=sorted(KINDS))
def kind(request: pytest.FixtureRequest) -> Kind:
    return KINDS[request.param]


@pytest.fixture
def upstream(request: pytest.FixtureRequest, kind: Kind) -> FakeUpstream:
    """The fake this kind talks to, fresh: the shared OpenAI/Anthropic one, or Bedrock's or Gemini's."""
    fake: FakeUpstream = request.getfixturevalue(kind.fake)
    fake.reset()
    return fake


def run(kind: Kind, upstream: FakeUpstream, job: Callable[[Provider, Deployment], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        provider = kind.make()
        try:
            return await job(provider, kind.deployment(upstream))
        finally:
            await provider.aclose()

    return asyncio.run(main())


async def _read(response: UpstreamResponse) -> list[bytes]:
    if response.chunks is None:
        return []
    try:
        return [chunk async for chunk in response.chunks]
    finally:
        await response.aclose()


def answers(kind: Kind, text: str, prompt: str) -> bool:
    return text == fake_reply(prompt) if kind.upstream else text.endswith(prompt)  # the mock echoes it


def test_a_whole_answer_with_usage(kind: Kind, upstream: FakeUpstream) -> None:
    async def job(provider: Provider, deployment: Deployment) -> tuple[UpstreamResponse, list[bytes]]:
        response = await provider.call(kind.api, deployment, kind.body("conformance whole"), OPTIONS)
        return response, await _read(response)

    response, chunks = run(kind, upstream, job)
    assert response.status == 200 and response.chunks is None
    text, usage = kind.text_and_usage(response, chunks)
    assert answers(kind, text, "conformance whole"), text
    assert usage.input > 0 and usage.output > 0
    if kind.upstream:
        assert usage.input >= FAKE_PROMPT_TOKENS


def test_a_stream_with_usage(kind: Kind, upstream: FakeUpstream) -> None:
    async def job(provider: Provider, deployment: Deployment) -> tuple[UpstreamResponse, list[bytes]]:
        response = await provider.call(kind.api, deployment, kind.body("conformance stream", stream=True), OPTIONS)
        return response, await _read(response)

    response, chunks = run(kind, upstream, job)
    assert response.status == 200 and response.chunks is not None and chunks
    text, usage = kind.text_and_usage(response, chunks)
    assert answers(kind, text, "conformance stream"), text
    assert usage.input > 0 and usage.output > 0


def _status_of(outcome: UpstreamResponse | GatewayError) -> int:
    return outcome.status


def test_an_upstream_refusal_keeps_its_status(kind: Kind, upstream: FakeUpstream) -> None:
    if not kind.upstream:
        pytest.skip("the mock has no upstream to refuse")

    async def job(provider: Provider, deployment: Deployment) -> UpstreamResponse | GatewayError:
        try:
            return await provider.call(kind.api, deployment, kind.body("FAKE_ERROR_429"), OPTIONS)
        except GatewayError as exc:
            return exc

    assert _status_of(run(kind, upstream, job)) == 429


def test_a_timeout_is_an_error_not_a_hang(kind: Kind, upstream: FakeUpstream) -> None:
    if not kind.upstream:
        pytest.skip("the mock has no upstream to wait for")

    async def job(provider: Provider, deployment: Deployment) -> Exception | None:
        options = CallOptions(timeout=0.5, connect_timeout=0.5)
        try:
            async with asyncio.timeout(15):
                response = await provider.call(kind.api, deployment, kind.body("FAKE_SLOW=3"), options)
                await _read(response)
        except GatewayError as exc:
            return exc
        return None

    error = run(kind, upstream, job)
    assert isinstance(error, GatewayError) and error.status in (408, 504), error


def test_closing_a_stream_early_lets_go_of_the_upstream(kind: Kind, upstream: FakeUpstream) -> None:
    if not kind.upstream:
        pytest.skip("the mock has no upstream connection")

    async def job(provider: Provider, deployment: Deployment) -> bytes:
        slow = kind.body("FAKE_CHUNK_DELAY=0.5 FAKE_CHUNKS=20 closing early", stream=True)
        response = await provider.call(kind.api, deployment, slow, OPTIONS)
        assert response.chunks is not None
        first = await anext(aiter(response.chunks))
        await response.aclose()
        return first

    assert run(kind, upstream, job)
    upstream.wait_for_disconnects(1, timeout=10)
