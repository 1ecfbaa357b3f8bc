"""The model list, in LiteLLM Proxy's YAML format, so an existing LiteLLM config works unchanged.

Parsing is strict about what we use (a bad entry fails start-up with file, entry and field named) and
tolerant of what we don't (unknown keys of `router_settings`, `litellm_settings`, … are ignored).
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .settings import Settings
from .types import Deployment

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

_KNOWN_PARAMS = {"model", "api_base", "base_url", "api_key", "api_version", "timeout", "stream_timeout"}


@dataclass(frozen=True)
class RetryPolicy:
    num_retries: int = 2  # extra attempts after the first, across deployments and fallbacks
    backoff_base: float = 0.1  # seconds; doubled each attempt, with ±50% jitter
    backoff_max: float = 5.0
    allowed_fails: int = 3  # failures within `cooldown_time` before a deployment is cooled down
    cooldown_time: float = 30.0
    fallbacks: dict[str, list[str]] = field(default_factory=dict)

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        delay: float = min(self.backoff_max, self.backoff_base * 2.0**attempt) * random.uniform(0.5, 1.5)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max))
        return delay


def parse_policy(router_settings: Mapping[str, Any], litellm_settings: Mapping[str, Any], where: str) -> RetryPolicy:
    """Read LiteLLM's names; `router_settings` wins over `litellm_settings`."""
    merged = {**litellm_settings, **router_settings}
    defaults = RetryPolicy()

    def number(name: str, default: float) -> float:
        value = merged.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{where}: '{name}' must be a non-negative number")
        return float(value)

    fallbacks: dict[str, list[str]] = {}
    raw = merged.get("fallbacks") or []
    if not isinstance(raw, list):
        raise ValueError(f"{where}: 'fallbacks' must be a list like [{{'gpt-4o': ['gpt-4o-mini']}}]")
    for item in raw:
        if not isinstance(item, dict):
            raise ValueError(f"{where}: each 'fallbacks' entry must map a model name to a list of names")
        for name, targets in item.items():
            targets = [targets] if isinstance(targets, str) else targets
            if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
                raise ValueError(f"{where}: fallbacks for '{name}' must be a list of model names")
            fallbacks.setdefault(str(name), []).extend(targets)
    return RetryPolicy(
        num_retries=int(number("num_retries", defaults.num_retries)),
        backoff_base=number("retry_after", defaults.backoff_base) or defaults.backoff_base,
        allowed_fails=int(number("allowed_fails", defaults.allowed_fails)),
        cooldown_time=number("cooldown_time", defaults.cooldown_time),
        fallbacks=fallbacks,
    )


class ConfigError(ValueError):
    """An invalid config file; the message names the file, entry and field."""


@dataclass(frozen=True)
class ModelConfig:
    deployments: tuple[Deployment, ...]
    source: str  # the file, or "defaults"
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    price_overrides: dict[str, dict[str, float]] = field(default_factory=dict)


def load_model_config(settings: Settings) -> ModelConfig:
    path = settings.resolved_config_path
    if path is None:
        return ModelConfig(deployments=tuple(_mock_deployments() + default_deployments(settings)), source="defaults")
    return parse_config_file(path, settings.environ)


def parse_config_file(path: Path, environ: Mapping[str, str]) -> ModelConfig:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping with a 'model_list'")
    return parse_config(raw, environ, source=str(path))


def parse_config(raw: Mapping[str, Any], environ: Mapping[str, str], *, source: str) -> ModelConfig:
    entries = raw.get("model_list") or []
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: 'model_list' must be a list")
    deployments: list[Deployment] = []
    prices: dict[str, dict[str, float]] = {}
    for index, entry in enumerate(entries):
        where = f"{source}: model_list[{index}]"
        deployment, price = _parse_entry(entry, environ, where)
        deployments.append(deployment)
        if price:
            prices[deployment.model_name] = price
    names = {d.model_name for d in deployments}
    deployments += [d for d in _mock_deployments() if d.model_name not in names]
    router = raw.get("router_settings") or {}
    litellm_settings = raw.get("litellm_settings") or {}
    if not isinstance(router, dict) or not isinstance(litellm_settings, dict):
        raise ConfigError(f"{source}: 'router_settings' and 'litellm_settings' must be mappings")
    try:
        policy = parse_policy(router, litellm_settings, source)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for name, targets in policy.fallbacks.items():
        for target in targets:
            if not any(d.model_name == target or fnmatch.fnmatchcase(target, d.model_name) for d in deployments):
                raise ConfigError(f"{source}: fallbacks for '{name}' name '{target}', which no model_list entry serves")
    return ModelConfig(tuple(deployments), source, policy, prices)


def _parse_entry(entry: Any, environ: Mapping[str, str], where: str) -> tuple[Deployment, dict[str, float]]:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: each entry must be a mapping with 'model_name' and 'litellm_params'")
    name = entry.get("model_name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: field 'model_name' is required and must be a string")
    where = f"{where} ({name})"
    params = entry.get("litellm_params")
    if not isinstance(params, dict):
        raise ConfigError(f"{where}: field 'litellm_params' is required and must be a mapping")
    resolved = {k: _resolve_env(v, environ, f"{where}: field 'litellm_params.{k}'") for k, v in params.items()}
    model = resolved.get("model")
    if not isinstance(model, str) or not model:
        raise ConfigError(f"{where}: field 'litellm_params.model' is required, e.g. 'openai/gpt-4o-mini'")
    provider, _, upstream_model = model.partition("/")
    if not upstream_model:
        provider, upstream_model = "openai", model
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
    if not api_base and provider in OPENAI_COMPATIBLE and OPENAI_COMPATIBLE[provider] is None:
        hint = f" or set {env_base}" if env_base else ""
        raise ConfigError(f"{where}: field 'litellm_params.api_base' is required for {provider} models{hint}")
    info = entry.get("model_info") or {}
    price = {
        k: float(v)
        for source in (info if isinstance(info, dict) else {}, resolved)
        for k, v in source.items()
        if k in PRICE_FIELDS and isinstance(v, int | float)
    }
    deployment = Deployment(
        model_name=name,
        provider=provider,
        model=upstream_model,
        api_base=api_base,
        api_key=api_key,
        api_version=api_version,
        timeout=float(timeout) if timeout is not None else None,
        params={k: v for k, v in resolved.items() if k not in _KNOWN_PARAMS and k not in PRICE_FIELDS},
        wildcard="*" in name,
    )
    return deployment, price


def _resolve_env(value: Any, environ: Mapping[str, str], where: str) -> Any:
    """LiteLLM's `os.environ/NAME` indirection; a missing variable is a config error, not a silent None."""
    if isinstance(value, str) and value.startswith("os.environ/"):
        name = value.removeprefix("os.environ/")
        if name not in environ:
            raise ConfigError(f"{where} refers to environment variable {name}, which is not set")
        return environ[name]
    return value


def _mock_deployments() -> list[Deployment]:
    return [Deployment(model_name=m, provider="mock", model=m) for m in MOCK_MODELS] + [
        Deployment(model_name="mock/*", provider="mock", model="*", wildcard=True)
    ]


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
        extra: dict[str, Any] = {}
        version = settings.azure_api_version if provider == "azure" else None
        out.append(
            Deployment(
                model_name=f"{provider}/*",
                provider=provider,
                model="*",
                api_base=base,
                api_key=key,
                api_version=version,
                params=extra,
                wildcard=True,
            )
        )
    if settings.aws_access_key_id and settings.aws_secret_access_key:
        out.append(
            Deployment(
                model_name="bedrock/*",
                provider="bedrock",
                model="*",
                wildcard=True,
                params={
                    "aws_access_key_id": settings.aws_access_key_id,
                    "aws_secret_access_key": settings.aws_secret_access_key,
                    "aws_region_name": settings.aws_region_name,
                },
            )
        )
    if settings.vertex_project:
        out.append(
            Deployment(
                model_name="vertex_ai/*",
                provider="vertex_ai",
                model="*",
                wildcard=True,
                params={
                    "vertex_project": settings.vertex_project,
                    "vertex_location": settings.vertex_location,
                    "vertex_credentials": settings.google_application_credentials,
                },
            )
        )
    return out
