"""The model list, in LiteLLM Proxy's YAML format, so an existing LiteLLM config works unchanged.

Parsing is strict about the shape of what we use (a malformed entry fails start-up with file, entry and
field named) and tolerant of the rest, without being silent: an `os.environ/NAME` reference to an unset
variable makes that one deployment unavailable (its calls answer 503 naming the variable), and every key
llm-scope does not act on becomes a `ConfigNote` that start-up logs and `check-config` prints.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from .config_sections import (
    ProxySettings,
    env_reference,
    environment_variables,
    mapping,
    model_group_aliases,
    passed_params,
    proxy_settings,
    read_includes,
    router_notes,
    top_level_notes,
    unset_message,
)
from .litellm_keys import (
    ENTRY_ACTED,
    ENTRY_REASONS,
    KNOWN_PROVIDERS,
    PARAMS_USED,
    ConfigError,
    ConfigNote,
    section_notes,
    suggest,
)
from .retry_policy import RetryPolicy, parse_policy
from .settings import Settings, overlay
from .types import Deployment

__all__ = ["ConfigError", "ConfigNote", "ModelConfig", "RetryPolicy", "load_model_config", "parse_config"]

MOCK_MODELS = ("mock-gpt", "mock/echo")

# Providers that speak OpenAI's chat-completions wire format, and where they live by default.
# These are reached by byte passthrough; every other provider goes through LiteLLM's translation.
OPENAI_COMPATIBLE: dict[str, str | None] = {
    "openai": "https://api.openai.com/v1",
    "azure": None,
    "hosted_vllm": None,
    "openai_compatible": None,
    "custom_openai": None,
    "lm_studio": "http://localhost:1234/v1",
    "groq": "https://api.groq.com/openai/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "together_ai": "https://api.together.xyz/v1",
    "fireworks_ai": "https://api.fireworks.ai/inference/v1",
    "mistral": "https://api.mistral.ai/v1",
    "xai": "https://api.x.ai/v1",
    "perplexity": "https://api.perplexity.ai",
    "deepinfra": "https://api.deepinfra.com/v1/openai",
}

# Keys used when no config file exists: a provider is offered when its key is set.
_DEFAULT_PROVIDERS = (
    ("openai", "openai_api_key", "openai_api_base"),
    ("anthropic", "anthropic_api_key", "anthropic_api_base"),
    ("azure", "azure_api_key", "azure_api_base"),
    ("groq", "groq_api_key", None),
    ("openrouter", "openrouter_api_key", None),
    ("gemini", "gemini_api_key", None),
)

# LiteLLM's fallbacks when an entry omits credentials: (key, base, version) environment variables.
PROVIDER_ENV: dict[str, tuple[str | None, str | None, str | None]] = {
    "openai": ("OPENAI_API_KEY", "OPENAI_API_BASE", None),
    "azure": ("AZURE_API_KEY", "AZURE_API_BASE", "AZURE_API_VERSION"),
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_API_BASE", None),
    "groq": ("GROQ_API_KEY", None, None),
    "openrouter": ("OPENROUTER_API_KEY", None, None),
    "deepseek": ("DEEPSEEK_API_KEY", None, None),
    "together_ai": ("TOGETHERAI_API_KEY", None, None),
    "fireworks_ai": ("FIREWORKS_AI_API_KEY", None, None),
    "mistral": ("MISTRAL_API_KEY", None, None),
    "xai": ("XAI_API_KEY", None, None),
    "perplexity": ("PERPLEXITYAI_API_KEY", None, None),
    "deepinfra": ("DEEPINFRA_API_KEY", None, None),
    "gemini": ("GEMINI_API_KEY", None, None),
}
PRICE_FIELDS = frozenset(
    {"input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost", "cache_creation_input_token_cost"}
)

# Bare model names in litellm_params.model, and the provider LiteLLM infers for them (else openai).
_BARE_PROVIDERS = (("claude-", "anthropic"), ("gemini-", "gemini"))


@dataclass(frozen=True)
class ModelConfig:
    deployments: tuple[Deployment, ...]
    source: str  # the file, or "defaults"
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    price_overrides: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: tuple[ConfigNote, ...] = ()  # what start-up logs and check-config prints
    proxy: ProxySettings = field(default_factory=ProxySettings)
    aliases: dict[str, str] = field(default_factory=dict)  # router_settings.model_group_alias
    hidden_aliases: frozenset[str] = frozenset()

    @property
    def unavailable(self) -> list[Deployment]:
        return [d for d in self.deployments if d.unavailable]

    def note_lines(self) -> list[str]:
        return [note.line(self.source) for note in self.notes]


def load_model_config(settings: Settings) -> ModelConfig:
    path = settings.resolved_config_path
    if path is None:
        return ModelConfig(deployments=tuple(_mock_deployments() + default_deployments(settings)), source="defaults")
    return parse_config_file(path, settings.environ)


def parse_config_file(path: Path, environ: Mapping[str, str]) -> ModelConfig:
    return parse_config(read_includes(_read_yaml(path), path, _read_yaml), environ, source=str(path))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping with a 'model_list'")
    return raw


def parse_config(raw: Mapping[str, Any], environ: Mapping[str, str], *, source: str) -> ModelConfig:
    notes = top_level_notes(raw)
    extra_env, env_notes = environment_variables(raw, environ, source)
    environ = {**environ, **extra_env}  # as LiteLLM Proxy does: the config's values win
    notes += env_notes
    entries = raw.get("model_list") or []
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: 'model_list' must be a list")
    router, litellm_settings = mapping(raw, "router_settings", source), mapping(raw, "litellm_settings", source)
    proxy, proxy_notes = proxy_settings(raw, environ, source)
    proxy = replace(proxy, environment=extra_env)
    strategy, routing_notes = router_notes(raw, source)
    timeout = router.get("timeout", litellm_settings.get("request_timeout"))
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
        raise ConfigError(f"{source}: 'request_timeout' / router_settings 'timeout' must be a number of seconds")
    deployments: list[Deployment] = []
    prices: dict[str, dict[str, float]] = {}
    for index, entry in enumerate(entries):
        deployment, price = _parse_entry(entry, environ, source, index, notes)
        if deployment.timeout is None and timeout is not None:
            deployment = replace(deployment, timeout=float(timeout))
        deployments.append(deployment)
        if price:
            prices[deployment.model_name] = price
    names = {d.model_name for d in deployments}
    deployments += [d for d in _mock_deployments() if d.model_name not in names]
    try:
        policy = replace(parse_policy(router, litellm_settings, source), routing_strategy=strategy)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    aliases, hidden = model_group_aliases(raw, source)
    targets = [(f"fallbacks for '{n}'", t) for n, ts in policy.fallbacks.items() for t in ts]
    targets += [("default_fallbacks", t) for t in policy.default_fallbacks]
    targets += [(f"model_group_alias '{a}'", t) for a, t in aliases.items()]
    for what, target in targets:
        if not any(d.model_name == target or fnmatch.fnmatchcase(target, d.model_name) for d in deployments):
            raise ConfigError(f"{source}: {what} names '{target}', which no model_list entry serves")
    notes += proxy_notes + routing_notes
    return ModelConfig(tuple(deployments), source, policy, prices, tuple(notes), proxy, aliases, hidden)


def effective_settings(settings: Settings, config: ModelConfig) -> Settings:
    """The process settings with the config's own laid over them.

    Master key: LLM_SCOPE_MASTER_KEY wins (an operator can rotate it without editing the file), then
    `general_settings.master_key`, then LITELLM_MASTER_KEY, LiteLLM Proxy's own fallback. The shared
    PostgreSQL: DATABASE_URL wins, then `general_settings.database_url`.
    """
    proxy = config.proxy
    settings = overlay(settings, proxy.environment)
    updates: dict[str, Any] = {}
    if not settings.master_key and (proxy.master_key or settings.litellm_master_key):
        updates["master_key"] = proxy.master_key or settings.litellm_master_key
    if not settings.database_url and proxy.database_url:
        updates["database_url"] = proxy.database_url
    if proxy.langfuse:
        updates["langfuse_enabled"] = True
    if proxy.trace_content is False:
        updates["trace_content"] = False
    return settings.model_copy(update=updates) if updates else settings


def _parse_entry(
    entry: Any, environ: Mapping[str, str], source: str, index: int, notes: list[ConfigNote]
) -> tuple[Deployment, dict[str, float]]:
    where = f"{source}: model_list[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: each entry must be a mapping with 'model_name' and 'litellm_params'")
    name = entry.get("model_name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: field 'model_name' is required and must be a string")
    path = f"model_list[{index}] ({name})"
    where = f"{source}: {path}"
    params = entry.get("litellm_params")
    if params is None and set(entry) <= {"model_name", "model_info"}:
        # LiteLLM Proxy 1.106 stops at start-up on such an entry (KeyError 'litellm_params' in load_config);
        # the name is what LiteLLM would be asked for, so serve it as that model.
        message = f"has no litellm_params: served as litellm_params.model '{name}'"
        notes.append(ConfigNote("different", path, message))
        params = {"model": name}
    if not isinstance(params, dict):
        raise ConfigError(f"{where}: field 'litellm_params' is required and must be a mapping")
    notes += section_notes(path, entry, ENTRY_ACTED, ENTRY_REASONS, frozenset())
    resolved: dict[str, Any] = {}
    missing: list[tuple[str, str]] = []
    for key, value in params.items():
        var = env_reference(value)
        if var is not None and var not in environ:
            missing.append((key, var))
        resolved[key] = environ.get(var) if var is not None else value
    model = resolved.get("model")
    if not isinstance(model, str) or not model:
        if not any(key == "model" for key, _ in missing):
            raise ConfigError(f"{where}: field 'litellm_params.model' is required, e.g. 'openai/gpt-4o-mini'")
        model = name
    provider, _, upstream_model = model.partition("/")
    if not upstream_model:
        provider = next((p for prefix, p in _BARE_PROVIDERS if model.startswith(prefix)), "openai")
        upstream_model = model
    timeout = resolved.get("timeout") or resolved.get("stream_timeout")
    if timeout is not None and not isinstance(timeout, int | float):
        raise ConfigError(f"{where}: field 'litellm_params.timeout' must be a number of seconds")
    for key in ("api_base", "base_url", "api_key", "api_version"):
        if resolved.get(key) is not None and not isinstance(resolved[key], str):
            raise ConfigError(f"{where}: field 'litellm_params.{key}' must be a string")
    env_key, env_base, env_version = PROVIDER_ENV.get(provider, (None, None, None))
    api_base = resolved.get("api_base") or resolved.get("base_url") or (environ.get(env_base) if env_base else None)
    api_key = resolved.get("api_key") or (environ.get(env_key) if env_key else None)
    api_version = resolved.get("api_version") or (environ.get(env_version) if env_version else None)
    unavailable = None
    for key, var in missing:
        message = f"{unset_message(var)}; calls to '{name}' answer 503 until it is set"
        notes.append(ConfigNote("unavailable", f"{path}.litellm_params.{key}", message))
        unavailable = unavailable or f"litellm_params.{key} {unset_message(var)}"
    if provider not in KNOWN_PROVIDERS and provider not in OPENAI_COMPATIBLE:
        guess = suggest(provider, KNOWN_PROVIDERS)
        hint = f" (did you mean '{guess}/{upstream_model}'?)" if guess else ""
        message = f"'{model}': unknown provider '{provider}'{hint}; calls to '{name}' answer 503"
        notes.append(ConfigNote("invalid", f"{path}.litellm_params.model", message))
        unavailable = unavailable or f"its provider '{provider}' is not one LiteLLM knows"
    needs_base = provider in OPENAI_COMPATIBLE and OPENAI_COMPATIBLE[provider] is None
    if not api_base and needs_base and not unavailable:
        hint = f" or set {env_base}" if env_base else ""
        raise ConfigError(f"{where}: field 'litellm_params.api_base' is required for {provider} models{hint}")
    info = entry.get("model_info") or {}
    info = info if isinstance(info, dict) else {}
    price = {
        k: float(v)
        for source in (info, resolved)
        for k, v in source.items()
        if k in PRICE_FIELDS and isinstance(v, int | float)
    }
    passthrough = provider in OPENAI_COMPATIBLE or provider == "anthropic"  # see providers.provider_kind
    passed = {k: v for k, v in resolved.items() if k not in PARAMS_USED and k not in PRICE_FIELDS}
    passed, param_notes = passed_params(path, provider, passed, info, passthrough=passthrough)
    notes += param_notes
    deployment = Deployment(
        model_name=name,
        provider=provider,
        model=upstream_model,
        api_base=api_base,
        api_key=api_key,
        api_version=api_version,
        timeout=float(timeout) if timeout is not None else None,
        params=passed,
        wildcard="*" in name,
        unavailable=f"model '{name}' is unavailable on this gateway: {unavailable}" if unavailable else None,
    )
    return deployment, price


def _mock_deployments() -> list[Deployment]:
    return [*(Deployment(model_name=m, provider="mock", model=m) for m in MOCK_MODELS), _wildcard("mock")]


def default_deployments(settings: Settings) -> list[Deployment]:
    """With no config file: a wildcard route for each provider whose key is set."""
    out: list[Deployment] = []
    for provider, key_field, base_field in _DEFAULT_PROVIDERS:
        key = getattr(settings, key_field)
        if not key:
            continue
        base = getattr(settings, base_field) if base_field else None
        if provider == "azure" and not base:
            continue  # an Azure route needs AZURE_API_BASE: without it every call would fail
        version = settings.azure_api_version if provider == "azure" else None
        out.append(_wildcard(provider, api_base=base, api_key=key, api_version=version))
    if settings.aws_access_key_id and settings.aws_secret_access_key:
        credentials = {
            "aws_access_key_id": settings.aws_access_key_id,
            "aws_secret_access_key": settings.aws_secret_access_key,
            "aws_region_name": settings.aws_region_name,
        }
        out.append(_wildcard("bedrock", params=credentials))
    if settings.vertex_project:
        project = {
            "vertex_project": settings.vertex_project,
            "vertex_location": settings.vertex_location,
            "vertex_credentials": settings.google_application_credentials,
        }
        out.append(_wildcard("vertex_ai", params=project))
    return out


def _wildcard(provider: str, **fields: Any) -> Deployment:
    """`<provider>/*`: any model of the provider, named as LiteLLM names it."""
    return Deployment(model_name=f"{provider}/*", provider=provider, model="*", wildcard=True, **fields)
