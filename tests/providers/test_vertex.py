"""Vertex AI through LiteLLM, against the loopback fake of Vertex and of Google's OAuth token endpoint.

Configured as a LiteLLM user configures it: `vertex_project`, `vertex_location` and `vertex_credentials` (a
service-account JSON, inline or as a file named by an environment variable) in the model list, and `api_base`
pointing LiteLLM's Vertex host at the fake (LiteLLM grafts its own `/v1/projects/…` path onto a bare host).
LiteLLM signs a JWT with the account's key (google-auth), the fake verifies it and issues a token, and the
Vertex routes take only that token. Gemini (`generateContent`, `streamGenerateContent`) and Claude on Vertex
(`rawPredict`, `streamRawPredict`), for chat completions and Messages, whole and streamed: the answer, the
stream's form, the buckets stored, the cost at the price table's rates, errors in the client's shape, and no
private key or access token anywhere the gateway writes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_scope.accounting.cost import price_table
from tests.fakes import gemini
from tests.fakes.gemini import FakeGemini
from tests.fakes.google_oauth import ServiceAccount
from tests.fakes.wire import FAKE_CACHE_CREATION_TOKENS, FAKE_CACHED_TOKENS, FAKE_PROMPT_TOKENS, fake_reply, word_count
from tests.gateway_server import GatewayServer, make_settings, model_config
from tests.providers.gateway_calls import (
    PACE,
    answered_text,
    assert_error_in_clients_shape,
    call,
    trace_of,
    ttft_is_the_first_tokens,
)

CLAUDE = "claude-haiku-4-5@20251001"
FLASH = "gemini-2.5-flash"
PUBLISHERS = "/v1/projects/{project}/locations/{location}/publishers"
WHERE = {"vertex-flash": "us-central1", "vertex-claude": "us-east5"}


@pytest.fixture(scope="module")
def revoked_account(gemini_fake: FakeGemini) -> ServiceAccount:
    """An account the token endpoint still grants, whose tokens Vertex refuses (its access withdrawn)."""
    account = ServiceAccount.create("vertex-fake-project", "revoked")
    gemini_fake.oauth.trust(account)
    gemini_fake.oauth.revoke(account)
    return account


@pytest.fixture(scope="module")
def short_lived_account(gemini_fake: FakeGemini) -> ServiceAccount:
    """An account whose tokens last a second: each call after the first needs a fresh one."""
    account = ServiceAccount.create("vertex-fake-project", "short-lived")
    gemini_fake.oauth.trust(account, lifetime_s=1)
    return account


def models(google: FakeGemini, *accounts: ServiceAccount) -> list[dict[str, Any]]:
    def entry(name: str, model: str, account: ServiceAccount, location: str, **params: Any) -> dict[str, Any]:
        params.setdefault("vertex_credentials", json.dumps(account.info(google.token_uri)))
        where = {"vertex_project": account.project_id, "vertex_location": location}
        return {"model_name": name, "litellm_params": {"model": model, "api_base": google.url, **where, **params}}

    good, revoked, short = accounts
    stranger = ServiceAccount.create("vertex-fake-project", "stranger")  # a key the token endpoint never saw
    from_env = {"vertex_credentials": "os.environ/GOOGLE_APPLICATION_CREDENTIALS"}
    return [
        entry("vertex-flash", f"vertex_ai/{FLASH}", good, WHERE["vertex-flash"]),
        entry("vertex-claude", f"vertex_ai/{CLAUDE}", good, WHERE["vertex-claude"], **from_env),
        entry("vertex-revoked-flash", f"vertex_ai/{FLASH}", revoked, "us-central1"),
        entry("vertex-revoked-claude", f"vertex_ai/{CLAUDE}", revoked, "us-east5"),
        entry("vertex-stranger", f"vertex_ai/{FLASH}", stranger, "us-central1"),
        entry("vertex-short-lived", f"vertex_ai/{CLAUDE}", short, "us-east5"),
    ]


@pytest.fixture(scope="module")
def gateway(
    gemini_fake: FakeGemini,
    vertex_account: ServiceAccount,
    revoked_account: ServiceAccount,
    short_lived_account: ServiceAccount,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayServer]:
    tmp: Path = tmp_path_factory.mktemp("vertex")
    key_file = tmp / "service-account.json"  # the file a user downloads and names in GOOGLE_APPLICATION_CREDENTIALS
    key_file.write_text(json.dumps(vertex_account.info(gemini_fake.token_uri)))
    environ = {"GOOGLE_APPLICATION_CREDENTIALS": str(key_file)}
    accounts = (vertex_account, revoked_account, short_lived_account)
    config = model_config(models(gemini_fake, *accounts), environ=environ)
    with GatewayServer(make_settings(tmp), model_config=config) as server:
        yield server


# ------------------------------------------------------------------------------------------ expectations

Buckets = tuple[int, int, int, int, int]  # (input, cache read, cache write, output, reasoning)
PRICE_KEYS = {"vertex-flash": FLASH, "vertex-claude": f"vertex_ai/{CLAUDE}"}  # LiteLLM's keys for these models


def billed(model: str, api: str, words: int) -> Buckets:
    if model == "vertex-claude":  # Anthropic's usage: the uncached prompt apart from cache reads and writes
        whole = FAKE_PROMPT_TOKENS + FAKE_CACHED_TOKENS + FAKE_CACHE_CREATION_TOKENS
        return whole, FAKE_CACHED_TOKENS, FAKE_CACHE_CREATION_TOKENS, words, 0
    thoughts = gemini.GEMINI_THOUGHT_TOKENS  # Gemini bills thoughts as output; Messages has no reasoning bucket
    reasoning = thoughts if api == "chat" else 0
    return FAKE_PROMPT_TOKENS + gemini.GEMINI_CACHED_TOKENS, gemini.GEMINI_CACHED_TOKENS, 0, words + thoughts, reasoning


def dollars(model: str, buckets: Buckets) -> float:
    """Each bucket at the table's rate for it, from LiteLLM's JSON directly (not through our cost module)."""
    prices = price_table()[PRICE_KEYS[model]]
    whole, read, write, output, reasoning = buckets
    rate_in, rate_out = prices["input_cost_per_token"], prices["output_cost_per_token"]
    return (
        (whole - read - write) * rate_in
        + read * prices.get("cache_read_input_token_cost", rate_in)
        + write * prices.get("cache_creation_input_token_cost", rate_in)
        + (output - reasoning) * rate_out
        + reasoning * prices.get("output_cost_per_reasoning_token", rate_out)
    )


def operation(model: str, project: str, stream: bool) -> str:
    base = PUBLISHERS.format(project=project, location=WHERE[model])
    if model == "vertex-claude":
        return f"{base}/anthropic/models/{CLAUDE}:{'streamRawPredict' if stream else 'rawPredict'}"
    return f"{base}/google/models/{FLASH}:{'streamGenerateContent' if stream else 'generateContent'}"


# ------------------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("api", ["chat", "messages"])
@pytest.mark.parametrize("model", ["vertex-flash", "vertex-claude"])
def test_answer_usage_and_cost(
    gateway: GatewayServer, gemini_fake: FakeGemini, vertex_account: ServiceAccount, model: str, api: str, stream: bool
) -> None:
    pace = PACE if stream else ""
    prompt = f"{pace}tell me about {model} {api} {'stream' if stream else 'whole'}"
    r = call(gateway, api, model, prompt, stream)
    text = answered_text(r, api, stream)
    assert text == fake_reply(prompt)

    asked = [req for req in gemini_fake.requests if prompt in req.body.decode()]
    assert [req.path for req in asked] == [operation(model, vertex_account.project_id, stream)]
    assert asked[0].query == ({"alt": "sse"} if stream else {})
    scheme, _, token = asked[0].headers["authorization"].partition(" ")  # the fake answered only a token it issued
    assert scheme == "Bearer" and token in gemini_fake.oauth.issued

    trace = trace_of(gateway, r)
    buckets = billed(model, api, word_count(text))
    usage = trace["usage"]
    assert (usage["input"], usage["cache_read"], usage["cache_write"], usage["output"], usage["reasoning"]) == buckets
    assert trace["input_tokens"] == buckets[0] and trace["output_tokens"] == buckets[3]
    assert trace["cost_total"] == pytest.approx(dollars(model, buckets), rel=1e-9, abs=1e-12)
    assert trace["cost_total"] > 0 and trace["status_code"] == 200 and trace["provider"] == "vertex_ai"
    if stream:  # the first token's time, not the end's: a stream buffered anywhere fails this on any machine
        assert ttft_is_the_first_tokens(trace), trace


def test_the_token_endpoint_checked_every_grant_and_tokens_are_reused(
    gateway: GatewayServer, gemini_fake: FakeGemini
) -> None:
    """Two calls on one deployment: LiteLLM asks for a token once and keeps it, and no grant of the trusted
    accounts was refused (a wrong audience, scope, expiry or signature would be, and the call would fail)."""
    grants = len([req for req in gemini_fake.requests if req.path == "/token"])
    for n in range(2):
        assert call(gateway, "chat", "vertex-flash", f"token reuse {n}", False).status_code == 200
    assert len([req for req in gemini_fake.requests if req.path == "/token"]) == grants
    assert not [why for why in gemini_fake.oauth.refused if "stranger" not in why]


def test_an_expired_token_is_replaced_before_the_next_call(gateway: GatewayServer, gemini_fake: FakeGemini) -> None:
    """Tokens expire (after an hour at Google): once the fake refuses the first token, the next call must carry a
    new one, got from the token endpoint before the call, not a 401 from Vertex."""

    def token_of(text: str) -> str:
        asked = [req for req in gemini_fake.requests if text.encode() in req.body]
        assert len(asked) == 1
        return asked[0].headers["authorization"].removeprefix("Bearer ")

    assert call(gateway, "messages", "vertex-short-lived", "first of two", False).status_code == 200
    first = token_of("first of two")
    deadline = time.monotonic() + 30
    while gemini_fake.oauth.valid(first):  # waiting for a state, not timing anything
        assert time.monotonic() < deadline
        time.sleep(0.1)
    r = call(gateway, "messages", "vertex-short-lived", "second of two", False)
    assert r.status_code == 200, r.text
    second = token_of("second of two")
    assert second != first and second in gemini_fake.oauth.issued


ERROR_CASES = [  # (model, trigger, status the client gets)
    ("vertex-flash", "FAKE_ERROR_429", 429),  # RESOURCE_EXHAUSTED
    ("vertex-flash", "FAKE_ERROR_500", 502),  # INTERNAL: the upstream failed
    ("vertex-claude", "FAKE_ERROR_429", 429),  # Vertex's own quota, in Google's shape
    ("vertex-claude", "FAKE_ERROR_500", 502),  # Anthropic's api_error through rawPredict
    ("vertex-revoked-flash", "anything", 401),  # UNAUTHENTICATED: a token Vertex no longer takes
    ("vertex-revoked-claude", "anything", 401),
]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("api", ["chat", "messages"])
@pytest.mark.parametrize(("model", "trigger", "status"), ERROR_CASES)
def test_upstream_errors_keep_their_status_in_the_clients_shape(
    gateway: GatewayServer, model: str, trigger: str, status: int, api: str, stream: bool
) -> None:
    r = call(gateway, api, model, f"{trigger} please", stream)
    assert_error_in_clients_shape(r, api, status)
    assert "Traceback" not in r.text and "ya29." not in r.text
    assert trace_of(gateway, r)["status_code"] == status


@pytest.mark.parametrize("api", ["chat", "messages"])
def test_a_key_the_token_endpoint_refuses_fails_before_any_vertex_call(
    gateway: GatewayServer, gemini_fake: FakeGemini, api: str
) -> None:
    """The grant is refused (invalid_grant), so there is no token and no request to Vertex: the gateway could not
    reach its upstream, a 502 that says why in Google's words."""
    r = call(gateway, api, "vertex-stranger", f"stranger {api}", False)
    assert r.status_code == 502, r.text
    message = r.json()["error"]["message"]
    assert "invalid_grant" in message and "Traceback" not in message, message
    assert not [req for req in gemini_fake.requests if f"stranger {api}".encode() in req.body]


def test_no_private_key_or_access_token_in_answers_logs_or_the_store(
    gateway: GatewayServer,
    gemini_fake: FakeGemini,
    vertex_account: ServiceAccount,
    revoked_account: ServiceAccount,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Successes, upstream errors, a revoked token and a refused grant, logged at debug level: neither a line of
    any private key nor any issued access token appears in an answer, the log, a trace or the store's files."""
    caplog.set_level(logging.DEBUG)
    answers, traces = [], []
    for api in ("chat", "messages"):
        for model, text, stream in (
            ("vertex-flash", "secret check", True),
            ("vertex-claude", "secret check", False),
            ("vertex-claude", "FAKE_ERROR_500 secret check", True),
            ("vertex-revoked-flash", "secret check", False),
            ("vertex-stranger", "secret check", False),
        ):
            r = call(gateway, api, model, f"{text} {api}", stream)
            answers.append(r.text)
            traces.append(json.dumps(trace_of(gateway, r)))
    assert "fake upstream says 500" in caplog.text and "invalid_grant" in caplog.text  # the failures were logged
    key_lines = [
        line
        for account in (vertex_account, revoked_account)
        for line in account.private_key_pem.splitlines()
        if "-----" not in line
    ]
    secrets = [*key_lines, *gemini_fake.oauth.issued]
    assert gemini_fake.oauth.issued
    stored = b"".join(p.read_bytes() for p in gateway.settings.data_dir.rglob("*") if p.is_file())
    for place, content in (("answers", "\n".join(answers)), ("log", caplog.text), ("traces", "\n".join(traces))):
        assert not [s[:12] for s in secrets if s in content], place
    assert not [s[:12] for s in secrets if s.encode() in stored]
