"""The model list in LiteLLM Proxy's YAML format: strict about what we use, errors that name the place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from llm_scope.model_config import MOCK_MODELS, ConfigError, load_model_config, parse_config, parse_config_file
from llm_scope.settings import load_settings


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def by_name(config: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for d in config.deployments:
        out.setdefault(d.model_name, []).append(d)
    return out


LITELLM_YAML = """
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/OPENAI_API_KEY
      timeout: 30
  - model_name: claude
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_key: os.environ/ANTHROPIC_API_KEY
      api_base: https://anthropic.example/v1
      max_tokens: 1024
    model_info:
      input_cost_per_token: 0.000003
      output_cost_per_token: 0.000015
  - model_name: azure-gpt
    litellm_params:
      model: azure/my-deployment
      api_base: os.environ/AZURE_BASE
      api_key: os.environ/AZURE_KEY
      api_version: "2024-10-21"
  - model_name: plain
    litellm_params:
      model: gpt-4o-mini
      base_url: http://localhost:1234/v1
  - model_name: openai/*
    litellm_params:
      model: openai/*
      api_key: os.environ/OPENAI_API_KEY
router_settings:
  routing_strategy: simple-shuffle
litellm_settings:
  drop_params: true
general_settings:
  master_key: os.environ/NOT_USED_BY_US
"""
ENV = {
    "OPENAI_API_KEY": "sk-openai-from-env",
    "ANTHROPIC_API_KEY": "sk-ant-from-env",
    "AZURE_BASE": "https://my-resource.openai.azure.com",
    "AZURE_KEY": "azure-key-from-env",
}


def test_litellm_format_file(tmp_path: Path) -> None:
    path = write(tmp_path, LITELLM_YAML)
    config = parse_config_file(path, ENV)
    assert config.source == str(path)
    models = by_name(config)
    [gpt] = models["gpt-4o"]
    assert (gpt.provider, gpt.model, gpt.api_key, gpt.timeout, gpt.wildcard) == (
        "openai",
        "gpt-4o",
        "sk-openai-from-env",
        30.0,
        False,
    )
    [claude] = models["claude"]
    assert (claude.provider, claude.model, claude.api_key, claude.api_base) == (
        "anthropic",
        "claude-sonnet-4-5",
        "sk-ant-from-env",
        "https://anthropic.example/v1",
    )
    assert claude.params == {"max_tokens": 1024}  # unknown litellm_params are passed on
    [azure] = models["azure-gpt"]
    assert (azure.provider, azure.model, azure.api_base, azure.api_key, azure.api_version) == (
        "azure",
        "my-deployment",
        "https://my-resource.openai.azure.com",
        "azure-key-from-env",
        "2024-10-21",
    )
    [plain] = models["plain"]
    assert (plain.provider, plain.model, plain.api_base) == ("openai", "gpt-4o-mini", "http://localhost:1234/v1")
    assert plain.api_key == "sk-openai-from-env"  # no api_key: LiteLLM's OPENAI_API_KEY fallback
    [wild] = models["openai/*"]
    assert wild.wildcard and wild.model == "*"
    assert config.price_overrides == {"claude": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05}}


def test_mock_models_are_always_present(tmp_path: Path) -> None:
    config = parse_config_file(write(tmp_path, LITELLM_YAML), ENV)
    names = by_name(config)
    for mock in (*MOCK_MODELS, "mock/*"):
        assert names[mock][0].provider == "mock"
    empty = parse_config({}, {}, source="empty")
    assert sorted(d.model_name for d in empty.deployments) == sorted([*MOCK_MODELS, "mock/*"])


def test_a_configured_model_named_like_a_mock_wins() -> None:
    raw = {"model_list": [{"model_name": "mock-gpt", "litellm_params": {"model": "openai/gpt-4o"}}]}
    [d] = by_name(parse_config(raw, {}, source="t"))["mock-gpt"]
    assert d.provider == "openai"


def test_several_entries_per_model_name() -> None:
    raw = {
        "model_list": [
            {"model_name": "fast", "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": "http://a/v1"}},
            {"model_name": "fast", "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": "http://b/v1"}},
            {"model_name": "fast", "litellm_params": {"model": "groq/llama-3.1-8b-instant"}},
        ]
    }
    fast = by_name(parse_config(raw, {}, source="t"))["fast"]
    assert [(d.provider, d.api_base) for d in fast] == [
        ("openai", "http://a/v1"),
        ("openai", "http://b/v1"),
        ("groq", None),
    ]


def test_os_environ_reference_resolves_in_any_param() -> None:
    raw = {
        "model_list": [
            {
                "model_name": "m",
                "litellm_params": {
                    "model": "openai/gpt-4o",
                    "api_base": "os.environ/BASE",
                    "organization": "os.environ/ORG",
                },
            }
        ]
    }
    [d] = by_name(parse_config(raw, {"BASE": "http://x/v1", "ORG": "org-1"}, source="t"))["m"]
    assert (d.provider, d.model, d.api_base, d.params) == ("openai", "gpt-4o", "http://x/v1", {"organization": "org-1"})


def test_os_environ_reference_in_model() -> None:
    raw = {
        "model_list": [
            {
                "model_name": "m",
                "litellm_params": {"model": "os.environ/MODEL_ID", "api_base": "os.environ/BASE", "seed": 3},
            }
        ]
    }
    [d] = by_name(parse_config(raw, {"MODEL_ID": "openai/gpt-4o", "BASE": "http://x/v1"}, source="t"))["m"]
    assert (d.provider, d.model, d.api_base, d.params) == ("openai", "gpt-4o", "http://x/v1", {"seed": 3})


@pytest.mark.parametrize(
    ("text", "env", "fragments"),
    [
        pytest.param(
            "model_list:\n  - litellm_params:\n      model: openai/gpt-4o\n",
            {},
            ["model_list[0]", "model_name"],
            id="missing-model-name",
        ),
        pytest.param(
            "model_list:\n  - model_name: ok\n    litellm_params: {model: openai/x}\n  - model_name: 7\n",
            {},
            ["model_list[1]", "model_name"],
            id="model-name-not-a-string",
        ),
        pytest.param(
            "model_list:\n  - model_name: m\n    litellm_params: openai/gpt-4o\n",
            {},
            ["model_list[0]", "(m)", "litellm_params", "mapping"],
            id="litellm-params-not-a-mapping",
        ),
        pytest.param(
            "model_list:\n  - model_name: m\n    litellm_parms: {model: openai/x}\n",
            {},
            ["model_list[0]", "(m)", "litellm_params"],
            id="litellm-params-misspelt",
        ),
        pytest.param(
            "model_list:\n  - model_name: m\n    litellm_params:\n      api_key: k\n",
            {},
            ["model_list[0]", "(m)", "litellm_params.model"],
            id="missing-litellm-params-model",
        ),
        pytest.param(
            "model_list:\n  - model_name: az\n    litellm_params:\n      model: azure/dep\n      api_key: k\n",
            {},
            ["model_list[0]", "(az)", "litellm_params.api_base", "azure"],
            id="azure-without-api-base",
        ),
        pytest.param(
            "model_list:\n  - model_name: v\n    litellm_params: {model: hosted_vllm/llama}\n",
            {},
            ["model_list[0]", "(v)", "litellm_params.api_base", "hosted_vllm"],
            id="self-hosted-without-api-base",
        ),
        pytest.param(
            "model_list:\n  - model_name: m\n    litellm_params: {model: openai/x, timeout: soon}\n",
            {},
            ["model_list[0]", "(m)", "litellm_params.timeout"],
            id="timeout-not-a-number",
        ),
        pytest.param(
            "model_list:\n  - model_name: m\n    litellm_params: {model: openai/x, api_base: [1]}\n",
            {},
            ["model_list[0]", "(m)", "litellm_params.api_base", "string"],
            id="api-base-not-a-string",
        ),
        pytest.param("model_list:\n  - just-a-string\n", {}, ["model_list[0]", "mapping"], id="entry-not-a-mapping"),
        pytest.param("model_list: {a: 1}\n", {}, ["model_list", "list"], id="model-list-not-a-list"),
        pytest.param("model_list: []\nrouter_settings: [1]\n", {}, ["router_settings"], id="router-settings-list"),
        pytest.param("- a\n- b\n", {}, ["top level", "mapping"], id="top-level-list"),
        pytest.param("model_list: [\n  - {unclosed\n", {}, ["invalid YAML"], id="invalid-yaml"),
        pytest.param("model_list:\n\t- tab\n", {}, ["invalid YAML"], id="tab-indent"),
    ],
)
def test_config_errors_name_file_entry_and_field(
    tmp_path: Path, text: str, env: dict[str, str], fragments: list[str]
) -> None:
    path = write(tmp_path, text, "bad.yaml")
    with pytest.raises(ConfigError) as info:
        parse_config_file(path, env)
    message = str(info.value)
    assert message.startswith(str(path)), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_azure_credentials_may_come_from_the_environment() -> None:
    raw = {"model_list": [{"model_name": "az", "litellm_params": {"model": "azure/dep"}}]}
    env = {"AZURE_API_BASE": "https://r.openai.azure.com", "AZURE_API_KEY": "az-k", "AZURE_API_VERSION": "2025-01-01"}
    [d] = by_name(parse_config(raw, env, source="t"))["az"]
    # the passthrough builds its URL from deployment.api_base alone, so the fallback must land there
    assert (d.provider, d.api_base, d.api_key, d.api_version) == ("azure", env["AZURE_API_BASE"], "az-k", "2025-01-01")


@pytest.mark.parametrize(
    ("provider", "env_key", "env_base"),
    [("openai", "OPENAI_API_KEY", "OPENAI_API_BASE"), ("anthropic", "ANTHROPIC_API_KEY", "ANTHROPIC_API_BASE")],
)
def test_provider_credentials_fall_back_to_the_environment(provider: str, env_key: str, env_base: str) -> None:
    raw = {"model_list": [{"model_name": "m", "litellm_params": {"model": f"{provider}/x"}}]}
    [d] = by_name(parse_config(raw, {env_key: "k-from-env", env_base: "http://base.local"}, source="t"))["m"]
    assert (d.api_key, d.api_base) == ("k-from-env", "http://base.local")
    explicit = {"model": f"{provider}/x", "api_key": "k-explicit", "api_base": "http://explicit"}
    [d] = by_name(
        parse_config({"model_list": [{"model_name": "m", "litellm_params": explicit}]}, {env_key: "no"}, source="t")
    )["m"]
    assert (d.api_key, d.api_base) == ("k-explicit", "http://explicit")


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        parse_config_file(tmp_path / "nope.yaml", {})
    empty = parse_config_file(write(tmp_path, ""), {})
    assert sorted(d.model_name for d in empty.deployments) == sorted([*MOCK_MODELS, "mock/*"])


def test_load_model_config_reads_the_configured_file(tmp_path: Path) -> None:
    path = write(
        tmp_path, yaml.safe_dump({"model_list": [{"model_name": "x", "litellm_params": {"model": "openai/y"}}]})
    )
    settings = load_settings({"LLM_SCOPE_CONFIG": str(path), "OPENAI_API_KEY": "sk-not-used"}, env_file=None)
    config = load_model_config(settings)
    assert config.source == str(path)
    assert "x" in by_name(config) and "openai/*" not in by_name(config)  # a file replaces the defaults


def test_load_model_config_resolves_env_from_dotenv(tmp_path: Path) -> None:
    path = write(
        tmp_path, "model_list:\n  - model_name: x\n    litellm_params: {model: openai/y, api_key: os.environ/K}\n"
    )
    dotenv = tmp_path / ".env"
    dotenv.write_text("K=from-dotenv\n")
    settings = load_settings({"LLM_SCOPE_CONFIG": str(path)}, env_file=str(dotenv))
    assert by_name(load_model_config(settings))["x"][0].api_key == "from-dotenv"


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no config/config.yaml here
    bare = load_model_config(load_settings({}, env_file=None))
    assert bare.source == "defaults"
    assert sorted(d.model_name for d in bare.deployments) == sorted([*MOCK_MODELS, "mock/*"])

    settings = load_settings(
        {
            "OPENAI_API_KEY": "sk-o",
            "OPENAI_API_BASE": "http://openai.local/v1",
            "ANTHROPIC_API_KEY": "sk-a",
            "AZURE_API_KEY": "az",
            "AZURE_API_BASE": "https://r.openai.azure.com",
            "AZURE_API_VERSION": "2024-10-21",
            "GROQ_API_KEY": "gsk",
            "AWS_ACCESS_KEY_ID": "AKIA",
            "AWS_SECRET_ACCESS_KEY": "secret",
            "AWS_REGION_NAME": "us-east-1",
        },
        env_file=None,
    )
    models = by_name(load_model_config(settings))
    wildcards = sorted(n for n in models if n.endswith("/*") and n != "mock/*")
    assert wildcards == ["anthropic/*", "azure/*", "bedrock/*", "groq/*", "openai/*"]
    for name in wildcards:
        [d] = models[name]
        assert d.wildcard and d.model == "*" and d.provider == name[:-2]
    assert (models["openai/*"][0].api_key, models["openai/*"][0].api_base) == ("sk-o", "http://openai.local/v1")
    assert models["anthropic/*"][0].api_key == "sk-a"
    assert models["azure/*"][0].api_version == "2024-10-21"
    assert models["bedrock/*"][0].params["aws_region_name"] == "us-east-1"
    assert {*MOCK_MODELS} <= set(models)


def test_default_config_path_is_picked_up_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config").mkdir()
    write(
        tmp_path / "config", "model_list:\n  - model_name: from-default-path\n    litellm_params: {model: openai/z}\n"
    )
    monkeypatch.chdir(tmp_path)
    config = load_model_config(load_settings({}, env_file=None))
    assert "from-default-path" in by_name(config)
