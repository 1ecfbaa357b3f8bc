"""The parts `create_app` assembles that are built from settings alone: the trace hand-off and its helper's
options, the egress, limits and key store. Apart from the composition root so that each can be built (and
checked, so a bad value stops start-up) on its own: `llm-scope keys` builds the key store without an app.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from . import __version__
from .access.keys import Keys, KeyStore
from .access.limits import Limits, MemoryLimits
from .access.reconcile import ReconciledLimits
from .metrics import Metrics
from .model_config import ModelConfig
from .postgres import is_postgres_url
from .providers.egress import Egress
from .settings import Settings
from .tracing.exporting import Route
from .tracing.genai import parse_headers, service_url
from .tracing.handoff import TraceHandoff
from .tracing.helper_protocol import HelperOptions
from .tracing.otlp import validate_environment


def build_pipeline(settings: Settings, config: ModelConfig, metrics: Metrics) -> TraceHandoff:
    langfuse = None
    if settings.langfuse_configured:
        assert settings.langfuse_public_key and settings.langfuse_secret_key
        # Checked here, so a bad value stops start-up instead of the trace helper.
        if not settings.langfuse_host.startswith(("http://", "https://")):
            raise ValueError(f"Langfuse host must be an http(s) URL, got {settings.langfuse_host!r}")
        validate_environment(settings.environment)
        langfuse = {
            "host": settings.langfuse_host,
            "public_key": settings.langfuse_public_key,
            "secret_key": settings.langfuse_secret_key,
            "environment": settings.environment,
            "release": settings.langfuse_release,
            "version": __version__,
            "route": route_for(settings.langfuse_host, settings),
        }
    options = HelperOptions(
        store_path=settings.data_dir / "llm-scope.db",
        langfuse=langfuse,
        otel=otel_options(settings),
        secrets=tuple(secrets_of(settings, config)),
        trace_content=settings.trace_content,
        max_outbox=settings.outbox_max_rows,
        retention_days=settings.retention_days,
        log_level="DEBUG" if settings.debug_mode else settings.log_level,
        log_format=settings.log_format,
        price_overrides=config.price_overrides,
        database_url=settings.database_url,
        nice=settings.helper_nice,
        idle=settings.helper_sched == "idle",
        session_repo=settings.session_repo,
    )
    return TraceHandoff(
        options,
        queue_size=settings.queue_size,
        queue_bytes=settings.queue_mb << 20,
        on_cost=metrics.add_cost,
        overflow=settings.trace_overflow,
    )


def otel_options(settings: Settings) -> dict[str, Any] | None:
    """The OpenTelemetry GenAI exporter's arguments, checked here so a bad value stops start-up."""
    if not settings.otel_configured:
        return None
    if settings.otel_protocol != "http/protobuf":
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={settings.otel_protocol!r} is not supported: llm-scope exports "
            "OTLP over http/protobuf (port 4318 on a Collector); set it to http/protobuf or leave it unset"
        )
    url = service_url(settings.otel_endpoint, settings.otel_traces_endpoint)
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"the OTLP endpoint must be an http(s) URL, got {url!r}")
    return {
        "url": url,
        "headers": parse_headers(settings.otel_headers),
        "service_name": settings.otel_service_name,
        "version": __version__,
        "content": settings.otel_capture_content and settings.trace_content,
        "route": route_for(url, settings),
    }


def route_for(url: str, settings: Settings) -> Route:
    """An exporter leaves through the proxy the passthrough would take to the same host (NO_PROXY alike)."""
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    proxy = build_egress(settings).proxy_for(parts.hostname or "", parts.port or (443 if tls else 80), tls)
    host = proxy and (f"[{proxy.host}]" if ":" in proxy.host else proxy.host)  # an IPv6 literal is bracketed
    return Route(
        proxy=f"http://{host}:{proxy.port}" if proxy is not None else None,
        proxy_authorization=proxy.authorization if proxy is not None else None,
        ca_file=settings.ssl_cert_file,
    )


def secrets_of(settings: Settings, config: ModelConfig) -> list[str]:
    """Every key the gateway holds, whatever its shape: settings, and the model list's `api_key`s."""
    keys = [d.api_key for d in config.deployments if d.api_key and len(d.api_key) >= 6]
    return list(dict.fromkeys([*settings.secrets(), *keys]))


def build_egress(settings: Settings) -> Egress:
    """Outbound proxies and CA trust for the passthrough; a malformed proxy URL stops start-up here."""
    return Egress(
        https_proxy=settings.https_proxy,
        http_proxy=settings.http_proxy,
        no_proxy=settings.no_proxy,
        ca_file=settings.ssl_cert_file,
    )


def build_limits(settings: Settings) -> Limits:
    limits: Limits = MemoryLimits()
    if settings.redis_url:
        from .access.shared_state import RedisLimits

        limits = RedisLimits(settings.redis_url)
    return ReconciledLimits(limits) if settings.database_url else limits


def build_keys(settings: Settings) -> Keys:
    """Virtual keys in the data dir, or with DATABASE_URL in PostgreSQL, shared by every instance."""
    if settings.database_url:
        if not is_postgres_url(settings.database_url):
            raise ValueError("DATABASE_URL must be a postgresql:// URL")
        from .access.pgkeys import PostgresKeyStore

        return PostgresKeyStore(settings.database_url)
    return KeyStore(settings.data_dir / "keys.db")
