"""Settings from the environment and `.env`: the only place that reads `os.environ`.

Everything downstream receives a frozen `Settings`, so tests build one from a plain dict and no module
consults the process environment behind the caller's back.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from dotenv import dotenv_values
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_CONFIG_PATH = Path("config/config.yaml")


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Gateway settings; see `.env.example` for every variable and its meaning."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True, populate_by_name=True)

    host: str = Field("127.0.0.1", validation_alias=_alias("PROXY_HOST", "host"))
    port: int = Field(8000, validation_alias=_alias("PROXY_PORT", "port"))
    workers: int = Field(1, validation_alias=_alias("LLM_SCOPE_WORKERS", "workers"))
    log_level: str = Field("INFO", validation_alias=_alias("LOG_LEVEL", "log_level"))
    log_format: Literal["text", "json"] = Field("text", validation_alias=_alias("LOG_FORMAT", "log_format"))
    debug_mode: bool = Field(False, validation_alias=_alias("DEBUG_MODE", "debug_mode"))
    config_path: Path | None = Field(None, validation_alias=_alias("LLM_SCOPE_CONFIG", "config_path"))
    data_dir: Path = Field(Path("data"), validation_alias=_alias("LLM_SCOPE_DATA_DIR", "data_dir"))
    master_key: str | None = Field(None, validation_alias=_alias("LLM_SCOPE_MASTER_KEY", "master_key"))
    # LiteLLM Proxy's variable: used when neither LLM_SCOPE_MASTER_KEY nor general_settings.master_key is set.
    litellm_master_key: str | None = Field(None, validation_alias=_alias("LITELLM_MASTER_KEY", "litellm_master_key"))
    redis_url: str | None = Field(None, validation_alias=_alias("REDIS_URL", "redis_url"))
    # postgresql://…: keys, spend and traces shared by every instance (see docs/DEPLOYMENT.md).
    database_url: str | None = Field(None, validation_alias=_alias("DATABASE_URL", "database_url"))
    cors_origins: str = Field("", validation_alias=_alias("CORS_ORIGINS", "cors_origins"))
    max_body_bytes: int = Field(32 * 1024 * 1024, validation_alias=_alias("LLM_SCOPE_MAX_BODY_BYTES", "max_body_bytes"))
    upstream_timeout: float = Field(600.0, validation_alias=_alias("LLM_SCOPE_UPSTREAM_TIMEOUT", "upstream_timeout"))
    max_concurrency: int = Field(1024, validation_alias=_alias("LLM_SCOPE_MAX_CONCURRENCY", "max_concurrency"))
    max_queue: int = Field(2048, validation_alias=_alias("LLM_SCOPE_MAX_QUEUE", "max_queue"))
    connect_timeout: float = Field(10.0, validation_alias=_alias("LLM_SCOPE_CONNECT_TIMEOUT", "connect_timeout"))

    # The way out, as curl and LiteLLM read it (lower-case names work too: the environment is upper-cased).
    https_proxy: str | None = Field(None, validation_alias=_alias("HTTPS_PROXY", "https_proxy"))
    http_proxy: str | None = Field(None, validation_alias=_alias("HTTP_PROXY", "http_proxy"))
    no_proxy: str | None = Field(None, validation_alias=_alias("NO_PROXY", "no_proxy"))
    ssl_cert_file: str | None = Field(None, validation_alias=_alias("SSL_CERT_FILE", "ssl_cert_file"))

    # Tracing
    trace_content: bool = Field(True, validation_alias=_alias("LLM_SCOPE_TRACE_CONTENT", "trace_content"))
    retention_days: int = Field(30, validation_alias=_alias("LLM_SCOPE_RETENTION_DAYS", "retention_days"))
    # Store each call's repository (its working directory's name) and git branch when the tool itself states
    # them in the request (Claude Code's environment block, Codex's environment context). Off: names of
    # private projects are something a team may not want in the store.
    session_repo: bool = Field(False, validation_alias=_alias("LLM_SCOPE_SESSION_REPO", "session_repo"))
    outbox_max_rows: int = Field(2_000_000, validation_alias=_alias("LLM_SCOPE_OUTBOX_MAX_ROWS", "outbox_max_rows"))
    queue_size: int = Field(10_000, validation_alias=_alias("LLM_SCOPE_QUEUE_SIZE", "queue_size"))
    # ... and at most this many MB handed over uncommitted (pickled, bodies included), plus one gathering batch of
    # up to 4 MB: coding agents' calls carry 50-200 KB each (12: docs/PERFORMANCE.md, issue 20 memory).
    queue_mb: int = Field(12, ge=1, validation_alias=_alias("LLM_SCOPE_QUEUE_MB", "queue_mb"))
    # A worker gives freed memory back to the system (glibc's malloc_trim) at most every this many seconds,
    # when malloc holds 4 MB or more of freed memory (memtrim.py); 0: never.
    malloc_trim_s: float = Field(0.25, ge=0, validation_alias=_alias("LLM_SCOPE_MALLOC_TRIM_S", "malloc_trim_s"))
    # When the trace helper falls behind and queue_size records (or queue_mb) are in memory: "spill" them to a
    # local file (data_dir/trace-spill) until it catches up, or "backpressure": refuse new calls with 503 +
    # Retry-After.
    trace_overflow: Literal["spill", "backpressure"] = Field(
        "spill", validation_alias=_alias("LLM_SCOPE_TRACE_OVERFLOW", "trace_overflow")
    )
    # The trace helpers' CPU priority below the workers' (nice, 0-19): on a core they share, a helper's batch
    # then does not preempt a request (the c1 tail, docs/scaling.md); at saturation more is spilled instead.
    helper_nice: int = Field(0, ge=0, le=19, validation_alias=_alias("LLM_SCOPE_HELPER_NICE", "helper_nice"))
    # "idle": the trace helpers run under Linux's SCHED_IDLE, so a request never waits for a helper's batch on
    # a core they share (c1 added p99 ~2.9 -> ~0.45 ms, docs/PERFORMANCE.md); at saturation the helpers get
    # only the CPU left over, so records spill and are stored once load ebbs. Off Linux it is "normal".
    helper_sched: Literal["normal", "idle"] = Field(
        "normal", validation_alias=_alias("LLM_SCOPE_HELPER_SCHED", "helper_sched")
    )
    environment: str = Field("default", validation_alias=_alias("LLM_SCOPE_ENVIRONMENT", "environment"))
    langfuse_enabled: bool = Field(True, validation_alias=_alias("LANGFUSE_ENABLED", "langfuse_enabled"))
    langfuse_public_key: str | None = Field(None, validation_alias=_alias("LANGFUSE_PUBLIC_KEY", "langfuse_public_key"))
    langfuse_secret_key: str | None = Field(None, validation_alias=_alias("LANGFUSE_SECRET_KEY", "langfuse_secret_key"))
    langfuse_host: str = Field(
        "https://cloud.langfuse.com",
        validation_alias=_alias("LANGFUSE_HOST", "LANGFUSE_BASE_URL", "langfuse_host"),
    )
    # The operator's release (Langfuse's trace `release` and observation `version`); unset sends none.
    langfuse_release: str = Field("", validation_alias=_alias("LANGFUSE_RELEASE", "langfuse_release"))
    # Standard OpenTelemetry GenAI spans to any OTLP/HTTP backend, under the OpenTelemetry SDK's own names.
    otel_export: bool = Field(True, validation_alias=_alias("LLM_SCOPE_OTEL_EXPORT", "otel_export"))
    otel_endpoint: str = Field("", validation_alias=_alias("OTEL_EXPORTER_OTLP_ENDPOINT", "otel_endpoint"))
    otel_traces_endpoint: str = Field(
        "", validation_alias=_alias("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "otel_traces_endpoint")
    )
    otel_headers: str = Field(
        "", validation_alias=_alias("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS", "otel_headers")
    )
    otel_protocol: str = Field(
        "http/protobuf",
        validation_alias=_alias("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL", "otel_protocol"),
    )
    otel_service_name: str = Field("llm-scope", validation_alias=_alias("OTEL_SERVICE_NAME", "otel_service_name"))
    otel_capture_content: bool = Field(
        False, validation_alias=_alias("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "otel_capture_content")
    )

    # Budget alerts: a JSON POST (Slack-compatible `text`) when a key crosses 80% and 100% of a budget; spend is
    # checked every interval seconds, and a failed delivery is retried with backoff from that interval.
    budget_webhook_url: str | None = Field(
        None, validation_alias=_alias("LLM_SCOPE_BUDGET_WEBHOOK_URL", "budget_webhook_url")
    )
    budget_alert_interval: float = Field(
        10.0, validation_alias=_alias("LLM_SCOPE_BUDGET_ALERT_INTERVAL", "budget_alert_interval")
    )

    # Metrics
    metrics_port: int = Field(9090, validation_alias=_alias("METRICS_PORT", "metrics_port"))
    # Loopback by default even when the API listens wider: Prometheus in a container sets 0.0.0.0 explicitly.
    metrics_host: str = Field("127.0.0.1", validation_alias=_alias("METRICS_HOST", "metrics_host"))
    metrics_on_main_port: bool = Field(True, validation_alias=_alias("METRICS_ON_MAIN_PORT", "metrics_on_main_port"))

    # Provider credentials, named as LiteLLM names them.
    openai_api_key: str | None = Field(None, validation_alias=_alias("OPENAI_API_KEY", "openai_api_key"))
    openai_api_base: str | None = Field(None, validation_alias=_alias("OPENAI_API_BASE", "openai_api_base"))
    anthropic_api_key: str | None = Field(None, validation_alias=_alias("ANTHROPIC_API_KEY", "anthropic_api_key"))
    anthropic_api_base: str | None = Field(None, validation_alias=_alias("ANTHROPIC_API_BASE", "anthropic_api_base"))
    azure_api_key: str | None = Field(None, validation_alias=_alias("AZURE_API_KEY", "azure_api_key"))
    azure_api_base: str | None = Field(None, validation_alias=_alias("AZURE_API_BASE", "azure_api_base"))
    azure_api_version: str | None = Field(None, validation_alias=_alias("AZURE_API_VERSION", "azure_api_version"))
    aws_access_key_id: str | None = Field(None, validation_alias=_alias("AWS_ACCESS_KEY_ID", "aws_access_key_id"))
    aws_secret_access_key: str | None = Field(
        None, validation_alias=_alias("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key")
    )
    aws_region_name: str | None = Field(
        None, validation_alias=_alias("AWS_REGION_NAME", "AWS_REGION", "aws_region_name")
    )
    vertex_project: str | None = Field(
        None, validation_alias=_alias("VERTEXAI_PROJECT", "VERTEX_PROJECT", "vertex_project")
    )
    vertex_location: str | None = Field(
        None, validation_alias=_alias("VERTEXAI_LOCATION", "VERTEX_LOCATION", "vertex_location")
    )
    google_application_credentials: str | None = Field(
        None, validation_alias=_alias("GOOGLE_APPLICATION_CREDENTIALS", "google_application_credentials")
    )
    gemini_api_key: str | None = Field(None, validation_alias=_alias("GEMINI_API_KEY", "gemini_api_key"))
    groq_api_key: str | None = Field(None, validation_alias=_alias("GROQ_API_KEY", "groq_api_key"))
    openrouter_api_key: str | None = Field(None, validation_alias=_alias("OPENROUTER_API_KEY", "openrouter_api_key"))

    # The environment as read, for `os.environ/NAME` references in the model config.
    environ: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only what load_settings passes: it already read the environment and .env, hermetically for tests."""
        return (init_settings,)

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def langfuse_configured(self) -> bool:
        return bool(self.langfuse_enabled and self.langfuse_public_key and self.langfuse_secret_key)

    @property
    def otel_configured(self) -> bool:
        return bool(self.otel_export and (self.otel_endpoint or self.otel_traces_endpoint))

    @property
    def resolved_config_path(self) -> Path | None:
        if self.config_path is not None:
            return self.config_path
        return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None

    def secrets(self) -> list[str]:
        """Every secret value we hold, so redaction can scrub them from anything we emit."""
        names = [n for n in type(self).model_fields if n.endswith(("_key", "_secret_key", "access_key"))]
        values = [getattr(self, n) for n in names] + [self.master_key, self.google_application_credentials]
        values.append(self.budget_webhook_url)  # a Slack webhook's URL is its token
        # OTLP headers carry a backend's API key or token: every value, whatever its header's name.
        values += [v.partition("=")[2].strip() for v in self.otel_headers.split(",")]
        for proxy in (self.https_proxy, self.http_proxy):  # http://user:password@proxy:3128
            password = urlsplit(proxy if "://" in proxy else f"http://{proxy}").password if proxy else None
            values.append(unquote(password) if password else None)
        if self.database_url:
            with contextlib.suppress(ValueError):
                values.append(urlsplit(self.database_url).password)
        return [v for v in values if isinstance(v, str) and len(v) >= 6]


def load_settings(
    environ: Mapping[str, str] | None = None, *, env_file: str | None = ".env", **overrides: object
) -> Settings:
    """Build Settings from `environ` (default: the process environment) plus `.env`, then overrides.

    `.env` values are applied to `environ` for `os.environ/NAME` lookups too, so a key kept in `.env`
    works in the YAML exactly as it would in LiteLLM Proxy.
    """
    explicit = dict(os.environ if environ is None else environ)
    from_file: dict[str, str] = {}
    if env_file and Path(env_file).is_file():
        from_file = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    # The explicit environment wins over .env, alias by alias (LANGFUSE_BASE_URL in the shell beats
    # LANGFUSE_HOST in .env); an empty value means unset.
    fields = _fields_from(explicit, from_file)
    fields.update({k: v for k, v in overrides.items() if v is not None})
    fields["environ"] = {**from_file, **explicit}
    return Settings.model_validate(fields)  # env already merged: don't let BaseSettings read it again


def overlay(settings: Settings, environ: Mapping[str, str]) -> Settings:
    """`settings` with `environ` laid over it, as if those variables had been set: a LiteLLM config's
    `environment_variables`, which win over the process environment as they do in LiteLLM Proxy."""
    if not environ:
        return settings
    fields: dict[str, object] = {**settings.model_dump(), **_fields_from(environ)}
    fields["environ"] = {**settings.environ, **environ}
    return Settings.model_validate(fields)


def _fields_from(*layers: Mapping[str, str]) -> dict[str, object]:
    """Settings fields found in `layers` by their variable names; the first layer holding a name wins."""
    upper = [{k.upper(): v for k, v in layer.items()} for layer in layers]
    fields: dict[str, object] = {}
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if not isinstance(alias, AliasChoices):
            continue
        names = [c for c in alias.choices if isinstance(c, str) and c.isupper()]
        for layer in upper:
            found = next((layer[c] for c in names if layer.get(c, "") != ""), None)
            if found is not None:
                fields[name] = found
                break
    return fields
