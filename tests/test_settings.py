"""Settings from a plain mapping (and optionally a .env file): defaults, aliases, precedence, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from llm_scope.settings import DEFAULT_CONFIG_PATH, load_settings


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings({}, env_file=None)
    assert (s.host, s.port, s.workers) == ("127.0.0.1", 8000, 1)
    assert s.master_key is None and s.cors_origin_list == []
    assert s.data_dir == Path("data") and s.config_path is None and s.resolved_config_path is None
    assert s.langfuse_host == "https://cloud.langfuse.com" and not s.langfuse_configured
    assert s.openai_api_key is None and s.openai_api_base is None
    assert s.environ == {} and s.secrets() == []


@pytest.mark.parametrize(
    ("environ", "field", "value"),
    [
        pytest.param({"PROXY_HOST": "0.0.0.0"}, "host", "0.0.0.0", id="host"),
        pytest.param({"PROXY_PORT": "9001"}, "port", 9001, id="port-as-int"),
        pytest.param({"proxy_port": "9002"}, "port", 9002, id="lowercase-name"),
        pytest.param({"LANGFUSE_BASE_URL": "https://lf.example"}, "langfuse_host", "https://lf.example", id="lf-base"),
        pytest.param({"LANGFUSE_HOST": "https://lf.host"}, "langfuse_host", "https://lf.host", id="lf-host"),
        pytest.param(
            {"LANGFUSE_HOST": "https://first", "LANGFUSE_BASE_URL": "https://second"},
            "langfuse_host",
            "https://first",
            id="lf-host-wins-over-base-url",
        ),
        pytest.param({"OPENAI_API_BASE": "http://o2/v1"}, "openai_api_base", "http://o2/v1", id="openai-api-base"),
        pytest.param({"ANTHROPIC_API_BASE": "http://a2"}, "anthropic_api_base", "http://a2", id="anthropic-api-base"),
        pytest.param(
            {"LANGFUSE_HOST": "", "LANGFUSE_BASE_URL": "https://lf.next"},
            "langfuse_host",
            "https://lf.next",
            id="empty-value-is-unset",
        ),
        pytest.param({"PROXY_HOST": ""}, "host", "127.0.0.1", id="empty-host-keeps-default"),
        pytest.param({"AWS_REGION": "eu-west-1"}, "aws_region_name", "eu-west-1", id="aws-region"),
        pytest.param({"VERTEX_PROJECT": "p1"}, "vertex_project", "p1", id="vertex-project"),
        pytest.param({"LLM_SCOPE_MASTER_KEY": "mk-123456"}, "master_key", "mk-123456", id="master-key"),
        pytest.param({"LLM_SCOPE_CONFIG": "c.yaml"}, "config_path", Path("c.yaml"), id="config-path"),
        pytest.param({"LLM_SCOPE_DATA_DIR": "/tmp/d"}, "data_dir", Path("/tmp/d"), id="data-dir"),
        pytest.param({"DEBUG_MODE": "true"}, "debug_mode", True, id="bool-true"),
        pytest.param({"LANGFUSE_ENABLED": "0"}, "langfuse_enabled", False, id="bool-zero"),
        pytest.param({"LLM_SCOPE_UPSTREAM_TIMEOUT": "2.5"}, "upstream_timeout", 2.5, id="float"),
    ],
)
def test_environment_names_and_aliases(environ: dict[str, str], field: str, value: object) -> None:
    s = load_settings(environ, env_file=None)
    assert getattr(s, field) == value
    assert s.environ == environ  # kept as read, for os.environ/NAME in the model config


@pytest.mark.parametrize(
    ("raw", "origins"),
    [
        pytest.param("", [], id="empty"),
        pytest.param("*", ["*"], id="star"),
        pytest.param("http://localhost:3000", ["http://localhost:3000"], id="one"),
        pytest.param(
            " http://a.test , https://b.test,,  ", ["http://a.test", "https://b.test"], id="spaces-and-blanks"
        ),
    ],
)
def test_cors_origins(raw: str, origins: list[str]) -> None:
    assert load_settings({"CORS_ORIGINS": raw}, env_file=None).cors_origin_list == origins


@pytest.mark.parametrize(
    "environ",
    [{"PROXY_PORT": "eighty"}, {"LOG_FORMAT": "xml"}, {"DEBUG_MODE": "perhaps"}],
)
def test_invalid_values_are_rejected(environ: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        load_settings(environ, env_file=None)


def test_dotenv_values_are_used_and_the_explicit_environ_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# comment\n"
        "PROXY_PORT=8123\n"
        "OPENAI_API_KEY=sk-from-dotenv-file\n"
        'LANGFUSE_BASE_URL="https://quoted.example"\n'
        "MY_CUSTOM_KEY=custom-from-dotenv\n"
        "LLM_SCOPE_MASTER_KEY=dotenv-master\n"
    )
    s = load_settings({"LLM_SCOPE_MASTER_KEY": "explicit-master", "OTHER": "x"}, env_file=str(dotenv))
    assert s.port == 8123
    assert s.openai_api_key == "sk-from-dotenv-file"
    assert s.langfuse_host == "https://quoted.example"
    assert s.master_key == "explicit-master"
    # .env also feeds os.environ/NAME lookups, without overriding the explicit environment
    assert s.environ["MY_CUSTOM_KEY"] == "custom-from-dotenv"
    assert s.environ["LLM_SCOPE_MASTER_KEY"] == "explicit-master" and s.environ["OTHER"] == "x"


@pytest.mark.parametrize("name", ["OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"])
def test_client_base_url_variables_are_not_upstreams(name: str) -> None:
    """Users export these to point their tools at the gateway; reading them as upstreams would loop."""
    s = load_settings({name: "http://127.0.0.1:8000/v1"}, env_file=None)
    assert s.openai_api_base is None and s.anthropic_api_base is None


def test_explicit_environ_wins_across_aliases(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("LANGFUSE_HOST=https://from-dotenv\n")
    s = load_settings({"LANGFUSE_BASE_URL": "https://explicit"}, env_file=str(dotenv))
    assert s.langfuse_host == "https://explicit"


def test_default_env_file_is_dotenv_in_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("PROXY_PORT=7777\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings({}).port == 7777
    assert load_settings({}).environ == {"PROXY_PORT": "7777"}


def test_missing_env_file_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings({}, env_file=str(tmp_path / "missing.env"))
    assert s.port == 8000 and s.environ == {}


def test_process_environment_is_read_when_no_mapping_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROXY_PORT", "8555")
    s = load_settings(env_file=None)
    assert s.port == 8555 and s.environ["PROXY_PORT"] == "8555"


def test_the_mapping_is_the_only_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROXY_PORT", "8555")
    monkeypatch.setenv("LLM_SCOPE_MASTER_KEY", "from-the-shell")
    (tmp_path / ".env").write_text("PROXY_HOST=10.9.8.7\n")
    monkeypatch.chdir(tmp_path)
    s = load_settings({}, env_file=None)
    assert (s.port, s.host, s.master_key) == (8000, "127.0.0.1", None)


def test_overrides_win_and_none_is_ignored() -> None:
    s = load_settings({"PROXY_PORT": "9000", "PROXY_HOST": "::1"}, env_file=None, port=9100, host=None)
    assert (s.port, s.host) == (9100, "::1")


def test_settings_are_frozen() -> None:
    s = load_settings({}, env_file=None)
    with pytest.raises(ValidationError):
        s.port = 1  # type: ignore[misc]


def test_langfuse_configured_needs_both_keys_and_enabled() -> None:
    keys = {"LANGFUSE_PUBLIC_KEY": "pk-lf-abc", "LANGFUSE_SECRET_KEY": "sk-lf-abc"}
    assert load_settings(keys, env_file=None).langfuse_configured
    assert not load_settings({"LANGFUSE_PUBLIC_KEY": "pk-lf-abc"}, env_file=None).langfuse_configured
    assert not load_settings({**keys, "LANGFUSE_ENABLED": "false"}, env_file=None).langfuse_configured


def test_secrets_lists_key_values() -> None:
    s = load_settings(
        {
            "OPENAI_API_KEY": "sk-openai-secret-1",
            "ANTHROPIC_API_KEY": "sk-ant-secret-2",
            "AZURE_API_KEY": "azure-secret-3",
            "GEMINI_API_KEY": "gemini-secret-4",
            "GROQ_API_KEY": "gsk-secret-5",
            "OPENROUTER_API_KEY": "or-secret-6",
            "AWS_SECRET_ACCESS_KEY": "aws-secret-7",
            "LANGFUSE_SECRET_KEY": "sk-lf-secret-8",
            "LLM_SCOPE_MASTER_KEY": "master-secret-9",
            "GOOGLE_APPLICATION_CREDENTIALS": "/path/to/creds.json",
            "PROXY_HOST": "127.0.0.1",
            "OPENAI_API_BASE": "https://api.openai.com/v1",
            "AZURE_API_VERSION": "2024-10-21",
        },
        env_file=None,
    )
    secrets = set(s.secrets())
    for value in (
        "sk-openai-secret-1",
        "sk-ant-secret-2",
        "azure-secret-3",
        "gemini-secret-4",
        "gsk-secret-5",
        "or-secret-6",
        "aws-secret-7",
        "sk-lf-secret-8",
        "master-secret-9",
        "/path/to/creds.json",
    ):
        assert value in secrets, value
    assert not secrets & {"127.0.0.1", "https://api.openai.com/v1", "2024-10-21"}


def test_secrets_skip_values_too_short_to_redact_safely() -> None:
    # "abc" would blank every "abc" in every trace; such values are not treated as secrets
    assert load_settings({"OPENAI_API_KEY": "abc", "LLM_SCOPE_MASTER_KEY": "12345"}, env_file=None).secrets() == []


def test_resolved_config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings({"LLM_SCOPE_CONFIG": "x.yaml"}, env_file=None).resolved_config_path == Path("x.yaml")
    assert load_settings({}, env_file=None).resolved_config_path is None
    (tmp_path / DEFAULT_CONFIG_PATH).parent.mkdir()
    (tmp_path / DEFAULT_CONFIG_PATH).write_text("model_list: []\n")
    assert load_settings({}, env_file=None).resolved_config_path == DEFAULT_CONFIG_PATH
