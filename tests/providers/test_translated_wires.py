"""The LiteLLM path against wire-faithful fakes of Amazon Bedrock, Gemini and Azure OpenAI, through the real gateway
(Vertex AI: test_vertex.py).

For chat completions and Messages, whole and streamed: the answer arrives, the stream is well-formed in the
client's format, the fake saw the provider's own operation (Converse, InvokeModel, generateContent, their
streaming forms; a valid SigV4 signature on every Bedrock request), the stored record holds the provider's
token buckets, and its cost is those buckets at the price table's rates, computed here from the table itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_scope.accounting.cost import price_table
from tests.fakes import bedrock, gemini
from tests.fakes.bedrock import FakeBedrock
from tests.fakes.gemini import FakeGemini
from tests.fakes.upstream import FakeUpstream
from tests.fakes.wire import FAKE_CACHE_CREATION_TOKENS, FAKE_CACHED_TOKENS, FAKE_PROMPT_TOKENS, fake_reply, word_count
from tests.gateway_server import GatewayServer, make_settings, model_config
from tests.providers.gateway_calls import (
    PACE,
    answered_text,
    assert_error_in_clients_shape,
    call,
    sse_events,
    trace_of,
    ttft_is_the_first_tokens,
)

HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
AZURE_KEY = "azure-fake-key-0123456789abcdef"
AWS = {
    "aws_access_key_id": bedrock.ACCESS_KEY,
    "aws_secret_access_key": bedrock.SECRET_KEY,
    "aws_region_name": bedrock.REGION,
}


def models(aws: FakeBedrock, google: FakeGemini, azure: FakeUpstream) -> list[dict[str, Any]]:
    def entry(name: str, model: str, **params: Any) -> dict[str, Any]:
        return {"model_name": name, "litellm_params": {"model": model, **params}}

    studio = google.url + "/v1beta"
    return [
        entry("bedrock-converse", f"bedrock/converse/{HAIKU}", aws_bedrock_runtime_endpoint=aws.url, **AWS),
        entry("bedrock-invoke", f"bedrock/invoke/{HAIKU}", api_base=aws.url, **AWS),
        entry(
            "bedrock-bad-secret", f"bedrock/converse/{HAIKU}", api_base=aws.url, **{**AWS, "aws_secret_access_key": "x"}
        ),
        entry("bedrock-slow", f"bedrock/converse/{HAIKU}", api_base=aws.url, timeout=0.5, **AWS),
        entry("gemini-flash", "gemini/gemini-2.5-flash", api_base=studio, api_key=gemini.GEMINI_KEY),
        entry("gemini-bad-key", "gemini/gemini-2.5-flash", api_base=studio, api_key="AIza-wrong"),
        entry("azure-mini", "azure/gpt-4o-mini", api_base=azure.url, api_key=AZURE_KEY, api_version="2024-10-21"),
    ]


@pytest.fixture(scope="module")
def gateway(
    bedrock_fake: FakeBedrock, gemini_fake: FakeGemini, upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    tmp: Path = tmp_path_factory.mktemp("translated")
    config = model_config(models(bedrock_fake, gemini_fake, upstream), environ={})
    with GatewayServer(make_settings(tmp), model_config=config) as server:
        yield server


# ------------------------------------------------------------------------------------------ expectations

# What each provider bills for a reply of `words` words: (input, cache read, cache write, output, reasoning).
Buckets = tuple[int, int, int, int, int]


def billed(model: str, api: str, words: int) -> Buckets:
    if model.startswith("bedrock"):  # Bedrock counts the uncached prompt apart from cache reads and writes
        whole = FAKE_PROMPT_TOKENS + FAKE_CACHED_TOKENS + FAKE_CACHE_CREATION_TOKENS
        return whole, FAKE_CACHED_TOKENS, FAKE_CACHE_CREATION_TOKENS, words, 0
    if model.startswith("azure"):  # OpenAI's usage: cached tokens are part of prompt_tokens
        return FAKE_PROMPT_TOKENS, FAKE_CACHED_TOKENS, 0, words, 0
    thoughts = gemini.GEMINI_THOUGHT_TOKENS
    # Anthropic's usage has no reasoning bucket: a Messages client sees thoughts inside output_tokens.
    reasoning = thoughts if api == "chat" else 0
    return FAKE_PROMPT_TOKENS + gemini.GEMINI_CACHED_TOKENS, gemini.GEMINI_CACHED_TOKENS, 0, words + thoughts, reasoning


PRICE_KEYS = {"bedrock": HAIKU, "gemini": "gemini/gemini-2.5-flash", "azure": "azure/gpt-4o-mini"}


def dollars(model: str, buckets: Buckets) -> float:
    """Each bucket at the table's rate for it, from LiteLLM's JSON directly (not through our cost module)."""
    prices = price_table()[PRICE_KEYS[model.split("-")[0]]]
    whole, read, write, output, reasoning = buckets
    rate_in, rate_out = prices["input_cost_per_token"], prices["output_cost_per_token"]
    return (
        (whole - read - write) * rate_in
        + read * prices.get("cache_read_input_token_cost", rate_in)
        + write * prices.get("cache_creation_input_token_cost", rate_in)
        + (output - reasoning) * rate_out
        + reasoning * prices.get("output_cost_per_reasoning_token", rate_out)
    )


OPERATIONS = {  # (model, stream) → what the fake must have been asked for
    ("bedrock-converse", False): f"/model/{HAIKU}/converse",
    ("bedrock-converse", True): f"/model/{HAIKU}/converse-stream",
    ("bedrock-invoke", False): f"/model/{HAIKU}/invoke",
    ("bedrock-invoke", True): f"/model/{HAIKU}/invoke-with-response-stream",
    ("gemini-flash", False): "/v1beta/models/gemini-2.5-flash:generateContent",
    ("gemini-flash", True): "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
    ("azure-mini", False): "/openai/deployments/gpt-4o-mini/chat/completions",
    ("azure-mini", True): "/openai/deployments/gpt-4o-mini/chat/completions",
}
HEADERS = {  # (model prefix) → how the fake saw the request authenticated
    "bedrock": ("authorization", f"AWS4-HMAC-SHA256 Credential={bedrock.ACCESS_KEY}/"),
    "gemini": ("x-goog-api-key", gemini.GEMINI_KEY),
    "azure": ("api-key", AZURE_KEY),
}


# ------------------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("api", ["chat", "messages"])
@pytest.mark.parametrize("model", ["bedrock-converse", "bedrock-invoke", "gemini-flash", "azure-mini"])
def test_answer_usage_and_cost(
    gateway: GatewayServer, request: pytest.FixtureRequest, model: str, api: str, stream: bool
) -> None:
    provider = model.split("-")[0]
    fake: FakeUpstream = request.getfixturevalue({"azure": "upstream"}.get(provider, f"{provider}_fake"))
    # A paced stream: at least PACED_GAPS sleeps of the fake come after the first token in every format.
    pace = PACE if stream else ""
    prompt = f"{pace}tell me about {model} {api} {'stream' if stream else 'whole'}"
    r = call(gateway, api, model, prompt, stream)
    text = answered_text(r, api, stream)
    assert text == fake_reply(prompt)

    asked = [req for req in fake.requests if prompt in req.body.decode()]
    assert [req.path for req in asked] == [OPERATIONS[model, stream]]
    header, value = HEADERS[provider]  # Bedrock's fake also checked the signature before answering
    assert asked[0].headers[header].startswith(value)

    trace = trace_of(gateway, r)
    buckets = billed(model, api, word_count(text))
    usage = trace["usage"]
    assert (usage["input"], usage["cache_read"], usage["cache_write"], usage["output"], usage["reasoning"]) == buckets
    assert trace["input_tokens"] == buckets[0] and trace["output_tokens"] == buckets[3]
    assert trace["cost_total"] == pytest.approx(dollars(model, buckets), rel=1e-9, abs=1e-12)
    assert trace["cost_total"] > 0 and trace["status_code"] == 200
    if stream:  # the first token's time, not the end's: a stream buffered anywhere fails this on any machine
        assert ttft_is_the_first_tokens(trace), trace
    assert all(secret not in json.dumps(trace) for secret in (bedrock.SECRET_KEY, gemini.GEMINI_KEY, AZURE_KEY))


ERROR_CASES = [  # (model, trigger, status the client gets)
    ("bedrock-converse", "FAKE_ERROR_429", 429),  # ThrottlingException
    ("bedrock-converse", "FAKE_ERROR_400", 400),  # ValidationException
    ("bedrock-converse", "FAKE_ERROR_500", 502),  # InternalServerException: the upstream failed
    ("bedrock-invoke", "FAKE_ERROR_429", 429),
    ("bedrock-bad-secret", "anything", 403),  # the fake's SigV4 check refuses it
    ("gemini-flash", "FAKE_ERROR_429", 429),  # RESOURCE_EXHAUSTED
    ("gemini-flash", "FAKE_ERROR_503", 502),
    ("gemini-bad-key", "anything", 401),  # API_KEY_INVALID: a 400 at Google, which LiteLLM calls an AuthenticationError
]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("api", ["chat", "messages"])
@pytest.mark.parametrize(("model", "trigger", "status"), ERROR_CASES)
def test_upstream_errors_keep_their_status_in_the_clients_shape(
    gateway: GatewayServer, model: str, trigger: str, status: int, api: str, stream: bool
) -> None:
    r = call(gateway, api, model, f"{trigger} please", stream)
    assert_error_in_clients_shape(r, api, status)
    assert bedrock.SECRET_KEY not in r.text and gemini.GEMINI_KEY not in r.text
    assert trace_of(gateway, r)["status_code"] == status


@pytest.mark.parametrize("api", ["chat", "messages"])
def test_a_slow_bedrock_is_a_timeout(gateway: GatewayServer, api: str) -> None:
    r = call(gateway, api, "bedrock-slow", "FAKE_SLOW=3 are you there", False)
    assert r.status_code == 504, r.text
    assert trace_of(gateway, r)["status_code"] == 504


@pytest.mark.parametrize("api", ["chat", "messages"])
def test_a_throttling_exception_mid_stream_ends_the_stream_in_an_error_event(gateway: GatewayServer, api: str) -> None:
    """ConverseStream reports throttling after it has started as an eventstream exception message: the client
    keeps the text it got and then reads a rate-limit error event in its own format; the call is an error."""
    r = call(gateway, api, "bedrock-converse", f"{bedrock.STREAM_THROTTLED} now", True)
    assert r.status_code == 200
    events = sse_events(r.text)
    name, data = events[-1]
    error = json.loads(data)
    if api == "chat":
        assert name is None and error["error"]["type"] == "rate_limit_error"
        text = "".join(c["delta"].get("content") or "" for _, d in events[:-1] for c in json.loads(d)["choices"])
    else:
        assert name == "error" and error == {"type": "error", "error": error["error"]}
        assert error["error"]["type"] == "rate_limit_error"
        text = "".join(json.loads(d)["delta"].get("text", "") for n, d in events if n == "content_block_delta")
    assert "throttlingException" in error["error"]["message"] and "Traceback" not in r.text
    assert text and fake_reply(f"{bedrock.STREAM_THROTTLED} now").startswith(text)
    trace = trace_of(gateway, r)
    assert trace["error_type"] is not None and trace["cost_total"] is None


def test_no_aws_secret_in_the_logs_even_at_debug(gateway: GatewayServer, caplog: pytest.LogCaptureFixture) -> None:
    """Bedrock's secret is a litellm_param, not an api_key: the failure log's redaction must cover it too."""
    caplog.set_level(logging.DEBUG)
    for api, text, stream in (("chat", "FAKE_ERROR_400 x", False), ("messages", f"{bedrock.STREAM_THROTTLED} y", True)):
        call(gateway, api, "bedrock-converse", text, stream)
    assert "fake bedrock says 400" in caplog.text  # the failures were logged, with LiteLLM's story
    assert bedrock.SECRET_KEY not in caplog.text
