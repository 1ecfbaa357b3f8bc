"""A LiteLLM Proxy config as LiteLLM users write it: what llm-scope takes from each key family, and the
notes it gives for the rest (unset variables, ignored keys, typos, unknown providers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llm_scope.gateway.resilience import Balancer
from llm_scope.gateway.routing import Router
from llm_scope.litellm_keys import KNOWN_PROVIDERS
from llm_scope.model_config import ConfigNote, ModelConfig, effective_settings, parse_config, parse_config_file
from llm_scope.settings import load_settings
from llm_scope.types import Deployment


def entry(name: str, **params: Any) -> dict[str, Any]:
    return {"model_name": name, "litellm_params": {"model": "openai/gpt-4o", **params}}


def notes(config: ModelConfig, kind: str | None = None) -> dict[str, ConfigNote]:
    return {n.path: n for n in config.notes if kind is None or n.kind == kind}


def named(config: ModelConfig, name: str) -> Deployment:
    [d] = [d for d in config.deployments if d.model_name == name]
    return d


def test_an_unset_variable_makes_only_its_deployment_unavailable() -> None:
    raw = {
        "model_list": [
            entry("gpt", api_key="os.environ/OPENAI_KEY"),
            entry("claude", api_key="os.environ/ANTHROPIC_KEY", api_base="os.environ/ANTHROPIC_BASE"),
            entry("azure", model="azure/dep", api_base="os.environ/AZURE_BASE"),  # api_base is required for azure
        ]
    }
    config = parse_config(raw, {"OPENAI_KEY": "sk-set-0123456789"}, source="c.yaml")
    assert named(config, "gpt").unavailable is None and named(config, "gpt").api_key == "sk-set-0123456789"
    claude = named(config, "claude")
    assert claude.unavailable is not None and "ANTHROPIC_KEY" in claude.unavailable
    assert "azure" in {d.model_name for d in config.unavailable}
    unavailable = notes(config, "unavailable")
    assert set(unavailable) == {
        "model_list[1] (claude).litellm_params.api_key",
        "model_list[1] (claude).litellm_params.api_base",
        "model_list[2] (azure).litellm_params.api_base",
    }
    line = unavailable["model_list[1] (claude).litellm_params.api_key"].line("c.yaml")
    assert line.startswith("c.yaml: unavailable: model_list[1] (claude).litellm_params.api_key — ")
    assert "ANTHROPIC_KEY" in line and "503" in line
    assert not any(n.is_error for n in config.notes)

    everything = parse_config(
        raw,
        {"OPENAI_KEY": "k1", "ANTHROPIC_KEY": "k2", "ANTHROPIC_BASE": "http://a", "AZURE_BASE": "http://z"},
        source="c",
    )
    assert everything.unavailable == [] and everything.notes == ()


@pytest.mark.parametrize(
    ("raw", "path", "fragment"),
    [
        pytest.param({"modellist": []}, "modellist", "'model_list'", id="top-level"),
        pytest.param({"litellm_settings": {"fallback": []}}, "litellm_settings.fallback", "'fallbacks'", id="fallback"),
        pytest.param(
            {"router_settings": {"routing_stratgy": "least-busy"}},
            "router_settings.routing_stratgy",
            "'routing_strategy'",
            id="router",
        ),
        pytest.param(
            {"general_settings": {"master_kye": "sk-x"}}, "general_settings.master_kye", "'master_key'", id="general"
        ),
        pytest.param(
            {"model_list": [entry("m", api_bse="http://x/v1")]},
            "model_list[0] (m).litellm_params.api_bse",
            "'api_base'",
            id="litellm-params",
        ),
        pytest.param(
            {"router_settings": {"routing_strategy": "least_busy"}},
            "router_settings.routing_strategy",
            "'least-busy'",
            id="strategy-value",
        ),
        pytest.param(
            {"litellm_settings": {"success_callback": ["langfuze"]}},
            "litellm_settings.success_callback[0]",
            "'langfuse'",
            id="callback-name",
        ),
    ],
)
def test_typos_get_a_did_you_mean(raw: dict[str, Any], path: str, fragment: str) -> None:
    found = notes(parse_config(raw, {}, source="c"))
    assert path in found, found
    assert found[path].kind == "typo" and f"did you mean {fragment}?" in found[path].message, found[path]
    assert found[path].is_error  # check-config fails on it; serve starts


def test_every_key_not_acted_on_is_named_with_a_reason() -> None:
    raw = {
        "model_list": [
            {**entry("m", tpm=100, temperature=0.2, tags=["a"]), "rpm": 3, "model_info": {"id": "x", "mode": "chat"}}
        ],
        "litellm_settings": {"cache": True, "drop_params": True, "callbacks": ["prometheus", "datadog"]},
        "router_settings": {"routing_strategy": "usage-based-routing-v2", "enable_pre_call_checks": True},
        "general_settings": {
            "database_url": "postgresql://u:p@db/x",
            "database_connection_pool_limit": 10,
            "alerting": ["slack"],
            "made_up_thing": 1,
        },
        "guardrails": [],
    }
    config = parse_config(raw, {}, source="c")
    found = notes(config)
    expected = {
        "model_list[0] (m).rpm": "rate limits",
        "model_list[0] (m).litellm_params.tpm": "rate limits",
        "model_list[0] (m).litellm_params.tags": "tag",
        "model_list[0] (m).litellm_params.temperature": "translates",  # openai calls pass through unchanged
        "model_list[0] (m).model_info": "id, mode",
        "litellm_settings.cache": "caching is not supported",
        "litellm_settings.callbacks[0]": "/metrics",
        "litellm_settings.callbacks[1]": "'datadog' is not supported",
        "router_settings.routing_strategy": "simple-shuffle is used",
        "router_settings.enable_pre_call_checks": "not supported",
        "general_settings.database_connection_pool_limit": "at most 3 PostgreSQL connections",
        "general_settings.alerting": "Prometheus",
        "general_settings.made_up_thing": "not a key",
        "guardrails": "not supported",
    }
    for path, fragment in expected.items():
        assert path in found and fragment in found[path].message, (path, found.get(path))
    assert set(found) == set(expected)  # drop_params: true is what llm-scope does anyway
    assert config.proxy.database_url == "postgresql://u:p@db/x"
    assert config.policy.routing_strategy == "simple-shuffle"


def test_an_unknown_provider_is_an_error_naming_the_entry() -> None:
    config = parse_config({"model_list": [entry("gpt", model="opnai/gpt-4o")]}, {}, source="c")
    [note] = [n for n in config.notes if n.is_error]
    assert note.path == "model_list[0] (gpt).litellm_params.model"
    assert "unknown provider 'opnai'" in note.message and "did you mean 'openai/gpt-4o'" in note.message
    assert named(config, "gpt").unavailable is not None  # serve still starts; the entry answers 503


def test_an_entry_with_only_a_model_name_is_served_as_that_model() -> None:
    config = parse_config({"model_list": [{"model_name": "gpt-3.5-turbo"}]}, {"OPENAI_API_KEY": "k"}, source="c")
    d = named(config, "gpt-3.5-turbo")
    assert (d.provider, d.model, d.api_key, d.unavailable) == ("openai", "gpt-3.5-turbo", "k", None)
    assert notes(config)["model_list[0] (gpt-3.5-turbo)"].kind == "different"


def test_environment_variables_win_and_feed_references() -> None:
    raw = {
        "environment_variables": {
            "UPSTREAM_KEY": "from-config",
            "COPIED": "os.environ/SHELL_VALUE",
            "MISSING": "os.environ/NOT_SET",
            "EMPTY": None,
            "PATH": "/evil",
        },
        "model_list": [entry("m", api_key="os.environ/UPSTREAM_KEY")],
    }
    config = parse_config(raw, {"UPSTREAM_KEY": "from-shell", "SHELL_VALUE": "v"}, source="c")
    assert config.proxy.environment == {"UPSTREAM_KEY": "from-config", "COPIED": "v"}
    assert named(config, "m").api_key == "from-config"  # as LiteLLM Proxy: the config's value wins
    found = notes(config)
    assert found["environment_variables.MISSING"].kind == "unavailable"
    assert {"environment_variables.EMPTY", "environment_variables.PATH"} <= set(found)


@pytest.mark.parametrize(
    ("environ", "config_key", "expected"),
    [
        pytest.param(
            {"LLM_SCOPE_MASTER_KEY": "sk-ours", "LITELLM_MASTER_KEY": "sk-l"}, "sk-file", "sk-ours", id="ours"
        ),
        pytest.param({"LITELLM_MASTER_KEY": "sk-litellm"}, "sk-file", "sk-file", id="file-over-litellm-env"),
        pytest.param({"LITELLM_MASTER_KEY": "sk-litellm"}, None, "sk-litellm", id="litellm-env"),
        pytest.param({"MK": "sk-from-ref"}, "os.environ/MK", "sk-from-ref", id="reference"),
        pytest.param({}, "os.environ/MK", None, id="unset-reference"),
    ],
)
def test_master_key_precedence(environ: dict[str, str], config_key: str | None, expected: str | None) -> None:
    raw: dict[str, Any] = {"general_settings": {"master_key": config_key} if config_key else {}}
    settings = load_settings(environ, env_file=None)
    effective = effective_settings(settings, parse_config(raw, settings.environ, source="c"))
    assert effective.master_key == expected
    if expected:
        assert expected in effective.secrets()  # redacted from everything the gateway emits


@pytest.mark.parametrize(
    ("environ", "config_url", "expected"),
    [
        pytest.param({}, "postgresql://u:pw-file-123@db/x", "postgresql://u:pw-file-123@db/x", id="file"),
        pytest.param(
            {"DATABASE_URL": "postgresql://u:pw-env-123@db/y"},
            "postgresql://u:pw-file-123@db/x",
            "postgresql://u:pw-env-123@db/y",
            id="env-wins",
        ),
        pytest.param(
            {"DB": "postgresql://u:pw-ref-123@db/z"}, "os.environ/DB", "postgresql://u:pw-ref-123@db/z", id="ref"
        ),
        pytest.param({}, "os.environ/DB", None, id="unset-reference"),
    ],
)
def test_database_url_from_general_settings(environ: dict[str, str], config_url: str, expected: str | None) -> None:
    raw: dict[str, Any] = {"general_settings": {"database_url": config_url}}
    settings = load_settings(environ, env_file=None)
    config = parse_config(raw, settings.environ, source="c")
    effective = effective_settings(settings, config)
    assert effective.database_url == expected
    notes = {note.path: note for note in config.notes}
    if expected:
        assert expected.split(":")[2].split("@")[0] in effective.secrets()  # the password is scrubbed everywhere
        assert "general_settings.database_url" not in notes  # acted on, so not named as ignored
    else:
        assert notes["general_settings.database_url"].kind == "unavailable"


def test_langfuse_callback_and_message_logging() -> None:
    raw = {"litellm_settings": {"success_callback": ["langfuse"], "turn_off_message_logging": True}}
    env = {"LANGFUSE_PUBLIC_KEY": "pk-lf-1", "LANGFUSE_SECRET_KEY": "sk-lf-1", "LANGFUSE_ENABLED": "false"}
    settings = load_settings(env, env_file=None)
    effective = effective_settings(settings, parse_config(raw, settings.environ, source="c"))
    assert effective.langfuse_configured and effective.trace_content is False
    bare = parse_config(raw, {}, source="c")
    assert notes(bare)["litellm_settings.success_callback"].kind == "unavailable"  # keys unset: export off
    # environment_variables may carry the Langfuse keys, as LiteLLM users often do
    carried = {**raw, "environment_variables": {"LANGFUSE_PUBLIC_KEY": "pk-lf-2", "LANGFUSE_SECRET_KEY": "sk-lf-2"}}
    effective = effective_settings(load_settings({}, env_file=None), parse_config(carried, {}, source="c"))
    assert effective.langfuse_configured and effective.langfuse_public_key == "pk-lf-2"


def test_router_policy_keys() -> None:
    raw = {
        "model_list": [entry("a"), entry("b"), entry("c", timeout=5)],
        "litellm_settings": {"request_timeout": 42, "default_fallbacks": ["b"], "num_retries": 1},
        "router_settings": {
            "routing_strategy": "latency-based-routing",
            "allowed_fails": 7,
            "cooldown_time": 12,
            "fallbacks": [{"c": ["a"]}],
            "model_group_alias": {"gpt-4": "a", "secret": {"model": "b", "hidden": True}},
        },
    }
    config = parse_config(raw, {}, source="c")
    policy = config.policy
    assert (policy.routing_strategy, policy.allowed_fails, policy.cooldown_time, policy.num_retries) == (
        "latency-based-routing",
        7,
        12.0,
        1,
    )
    assert policy.fallbacks_for("a") == ["b"] and policy.fallbacks_for("c") == ["a"] and policy.fallbacks_for("b") == []
    assert (named(config, "a").timeout, named(config, "c").timeout) == (42.0, 5.0)
    router = Router(config.deployments, config.aliases, config.hidden_aliases)
    assert router.resolve("gpt-4")[0].model_name == "a" and router.resolve("secret")[0].model_name == "b"
    assert "gpt-4" in router.names and "secret" not in router.names
    assert parse_config({"router_settings": {"disable_cooldowns": True}}, {}, source="c").policy.cooldown_time == 0


def test_include_merges_model_lists(tmp_path: Path) -> None:
    (tmp_path / "models.yaml").write_text(
        "model_list:\n  - model_name: included\n    litellm_params: {model: openai/x}\n"
    )
    main = tmp_path / "config.yaml"
    main.write_text("include: [models.yaml]\nmodel_list:\n  - model_name: own\n    litellm_params: {model: openai/y}\n")
    names = {d.model_name for d in parse_config_file(main, {}).deployments}
    assert {"own", "included"} <= names


def test_balancer_orders_by_strategy() -> None:
    a, b = (Deployment(model_name="m", provider="openai", model=m, api_base="http://x") for m in ("a", "b"))
    busy = Balancer("least-busy")
    busy.started(a)
    assert busy.order([a, b]) == [b, a]
    busy.ended(a)
    assert busy.order([a, b]) == [a, b]  # ties keep rotation order
    fast = Balancer("latency-based-routing")
    fast.answered(a, 0.5)
    assert fast.order([a, b]) == [b, a]  # b not measured yet: tried first
    fast.answered(b, 2.0)
    assert fast.order([b, a]) == [a, b]


def test_known_providers_cover_litellms() -> None:
    from llm_scope.providers.litellm_adapter import load_litellm

    providers = {str(getattr(p, "value", p)) for p in load_litellm().provider_list}
    assert providers <= KNOWN_PROVIDERS, sorted(providers - KNOWN_PROVIDERS)


def test_a_config_master_key_allows_listening_beyond_loopback() -> None:
    from llm_scope.cli import check_bind

    settings = load_settings({"PROXY_HOST": "0.0.0.0", "MK": "sk-config-master-0123"}, env_file=None)
    with pytest.raises(SystemExit):
        check_bind(settings)
    config = parse_config({"general_settings": {"master_key": "os.environ/MK"}}, settings.environ, source="c")
    check_bind(effective_settings(settings, config))  # protected now, so allowed
    unset = parse_config({"general_settings": {"master_key": "os.environ/UNSET"}}, settings.environ, source="c")
    with pytest.raises(SystemExit):
        check_bind(effective_settings(settings, unset))  # a reference to nothing protects nothing
