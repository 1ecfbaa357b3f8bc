"""Model name → deployment: exact names, rotation, wildcards (most specific first), bare-name guesses."""

from __future__ import annotations

import pytest

from llm_scope.errors import ModelNotFound
from llm_scope.gateway.routing import Router
from llm_scope.types import Deployment


def dep(name: str, provider: str, model: str, **kw: object) -> Deployment:
    return Deployment(model_name=name, provider=provider, model=model, wildcard="*" in name, **kw)  # type: ignore[arg-type]


A = dep("fast", "openai", "gpt-4o-mini", api_base="http://a")
B = dep("fast", "openai", "gpt-4o-mini", api_base="http://b")
C = dep("fast", "azure", "mini-deployment", api_base="http://c")
SMART = dep("smart", "openai", "gpt-4o")
OPENAI_ALL = dep("openai/*", "openai", "*", api_key="k-openai")
ANTHROPIC_ALL = dep("anthropic/*", "anthropic", "*", api_key="k-anthropic-all")
ANTHROPIC_CLAUDE = dep("anthropic/claude-*", "anthropic", "claude-*", api_key="k-anthropic-claude")
GEMINI_ALL = dep("gemini/*", "gemini", "*")
FIXED = dep("team/*", "openai", "gpt-4o-mini")  # wildcard name, fixed upstream model
SUFFIX = dep("*-cheap", "groq", "*-instant")

ROUTER = Router([A, SMART, B, OPENAI_ALL, ANTHROPIC_ALL, ANTHROPIC_CLAUDE, GEMINI_ALL, FIXED, SUFFIX, C])


def test_names_and_wildcards() -> None:
    assert ROUTER.names == ["fast", "smart"]
    assert ROUTER.wildcards[0] is ANTHROPIC_CLAUDE  # most specific pattern first
    assert sorted(d.model_name for d in ROUTER.wildcards) == sorted(
        d.model_name for d in (OPENAI_ALL, ANTHROPIC_ALL, ANTHROPIC_CLAUDE, GEMINI_ALL, FIXED, SUFFIX)
    )


def test_exact_name() -> None:
    assert ROUTER.resolve("smart") == [SMART]


def test_deployments_sharing_a_name_rotate() -> None:
    router = Router([A, B, C])
    firsts = []
    for _ in range(6):
        found = router.resolve("fast")
        assert sorted(d.api_base or "" for d in found) == ["http://a", "http://b", "http://c"]  # all as fallbacks
        firsts.append(found[0])
    assert firsts == [A, B, C, A, B, C]


def test_rotation_is_per_name() -> None:
    router = Router([A, B, SMART])
    assert router.resolve("fast")[0] is A
    assert router.resolve("smart")[0] is SMART
    assert router.resolve("fast")[0] is B


def test_exact_name_beats_wildcard() -> None:
    exact = dep("openai/gpt-4o", "openai", "gpt-4o-2024-08-06", api_base="http://pinned")
    router = Router([OPENAI_ALL, exact])
    assert router.resolve("openai/gpt-4o") == [exact]


@pytest.mark.parametrize(
    ("requested", "source", "model"),
    [
        pytest.param("openai/gpt-4o", OPENAI_ALL, "gpt-4o", id="openai-wildcard-binds-model"),
        pytest.param("openai/ft:gpt-4o-mini:org::abc", OPENAI_ALL, "ft:gpt-4o-mini:org::abc", id="fine-tune-id"),
        pytest.param("anthropic/claude-sonnet-4", ANTHROPIC_CLAUDE, "claude-sonnet-4", id="claude-star-beats-star"),
        pytest.param("anthropic/other-model", ANTHROPIC_ALL, "other-model", id="falls-back-to-provider-star"),
        pytest.param("gemini/gemini-2.0-flash", GEMINI_ALL, "gemini-2.0-flash", id="gemini"),
        pytest.param("team/anything", FIXED, "gpt-4o-mini", id="fixed-upstream-model"),
        pytest.param("llama-3-cheap", SUFFIX, "llama-3-instant", id="suffix-pattern"),
    ],
)
def test_wildcards_bind_the_upstream_model(requested: str, source: Deployment, model: str) -> None:
    found = ROUTER.resolve(requested)
    assert len(found) == 1
    d = found[0]
    assert (d.model_name, d.provider, d.model, d.wildcard) == (requested, source.provider, model, False)
    assert d.api_key == source.api_key
    assert source.wildcard and source.model_name != requested  # the configured route is not modified


@pytest.mark.parametrize(
    ("requested", "source", "bound_name", "model"),
    [
        pytest.param("gpt-4o", OPENAI_ALL, "openai/gpt-4o", "gpt-4o", id="gpt"),
        pytest.param("o3-mini", OPENAI_ALL, "openai/o3-mini", "o3-mini", id="o-series"),
        pytest.param("chatgpt-4o-latest", OPENAI_ALL, "openai/chatgpt-4o-latest", "chatgpt-4o-latest", id="chatgpt"),
        # The most specific matching pattern wins for bare names too.
        pytest.param("claude-sonnet-4", ANTHROPIC_CLAUDE, "anthropic/claude-sonnet-4", "claude-sonnet-4", id="claude"),
        pytest.param("gemini-2.5-pro", GEMINI_ALL, "gemini/gemini-2.5-pro", "gemini-2.5-pro", id="gemini"),
    ],
)
def test_bare_names_go_to_the_provider_wildcard(
    requested: str, source: Deployment, bound_name: str, model: str
) -> None:
    [d] = ROUTER.resolve(requested)
    assert (d.model_name, d.provider, d.model, d.api_key) == (bound_name, source.provider, model, source.api_key)


def test_bare_names_use_a_narrower_provider_pattern() -> None:
    [d] = Router([ANTHROPIC_CLAUDE]).resolve("claude-sonnet-4")
    assert (d.model_name, d.model) == ("anthropic/claude-sonnet-4", "claude-sonnet-4")


def test_catch_all_is_the_last_resort() -> None:
    catch_all = dep("*", "openai", "*", api_key="k-default")
    router = Router([catch_all, ANTHROPIC_ALL])
    assert router.resolve("claude-x")[0].api_key == "k-anthropic-all"
    assert router.resolve("anything-else")[0].api_key == "k-default"


def test_bare_names_need_the_provider_wildcard() -> None:
    router = Router([SMART, GEMINI_ALL])
    for name in ("gpt-4o", "claude-sonnet-4"):
        with pytest.raises(ModelNotFound):
            router.resolve(name)
    assert router.resolve("gemini-pro")[0].model == "gemini-pro"


def test_catch_all_wildcard_is_last_resort() -> None:
    everything = dep("*", "openai", "*", api_base="http://catch-all")
    router = Router([everything, OPENAI_ALL])
    assert router.resolve("openai/gpt-4o")[0].api_key == "k-openai"
    [d] = router.resolve("some-local-model")
    assert (d.model, d.api_base) == ("some-local-model", "http://catch-all")


@pytest.mark.parametrize("name", ["no-such-model", "mistral/mistral-large", "GPT-4O", "openai", "", "claude"])
def test_unknown_model(name: str) -> None:
    assert ROUTER.candidates(name) == []
    with pytest.raises(ModelNotFound) as info:
        ROUTER.resolve(name)
    err = info.value
    assert err.param == "model" and err.status == 404 and err.code == "model_not_found"
    assert repr(name) in err.message or f"'{name}'" in err.message
    assert err.openai_body()["error"]["param"] == "model"


def test_empty_router() -> None:
    router = Router([])
    assert router.names == [] and router.wildcards == []
    with pytest.raises(ModelNotFound):
        router.resolve("gpt-4o")


def test_entries_sharing_a_wildcard_pattern_take_turns() -> None:
    one = dep("openai/*", "openai", "*", api_key="k-1")
    two = dep("openai/*", "openai", "*", api_key="k-2")
    router = Router([one, two])
    keys = [router.resolve("openai/gpt-4o")[0].api_key for _ in range(4)]
    assert keys == ["k-1", "k-2", "k-1", "k-2"]
    assert [d.api_key for d in router.resolve("openai/gpt-4o")] == ["k-1", "k-2"]  # the other is next in line
