"""Shared fixtures: a fake upstream (real aiohttp server) and a gateway routed to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.tls import CertAuthority, make_test_ca
from tests.fakes.upstream import FakeUpstream, start_fake_upstream
from tests.gateway_server import GatewayServer, make_settings, model_config

UPSTREAM_KEY = "sk-upstream-test-key-0123456789abcdef"


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    fake = start_fake_upstream(slow_seconds=3.0)
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertAuthority:
    """A throw-away CA and a server certificate it signed, for TLS upstreams and backends on loopback."""
    made = make_test_ca(tmp_path_factory.mktemp("ca"))
    if made is None:
        pytest.skip("no openssl command to make a test CA (scripts/system-deps.sh installs it)")
    return made


def upstream_models(upstream: FakeUpstream) -> list[dict[str, object]]:
    return [
        {
            "model_name": "gpt-fake",
            "litellm_params": {
                "model": "openai/gpt-4o-mini",
                "api_base": upstream.openai_base_url,
                "api_key": UPSTREAM_KEY,
            },
        },
        {
            "model_name": "azure-fake",
            "litellm_params": {
                "model": "azure/my-deployment",
                "api_base": upstream.url,
                "api_key": UPSTREAM_KEY,
                "api_version": "2024-10-21",
            },
        },
        {
            "model_name": "claude-fake",
            "litellm_params": {
                "model": "anthropic/claude-haiku-4-5-20251001",
                "api_base": upstream.url,
                "api_key": UPSTREAM_KEY,
            },
        },
        {
            "model_name": "slow-fake",
            "litellm_params": {
                "model": "openai/gpt-4o-mini",
                "api_base": upstream.openai_base_url,
                "api_key": UPSTREAM_KEY,
                "timeout": 0.5,
            },
        },
        {
            "model_name": "dead-fake",
            "litellm_params": {
                "model": "openai/gpt-4o-mini",
                "api_base": "http://127.0.0.1:9/v1",
                "api_key": UPSTREAM_KEY,
            },
        },
    ]


@pytest.fixture
def gateway(tmp_path: Path, upstream: FakeUpstream) -> Iterator[GatewayServer]:
    upstream.reset()
    settings = make_settings(tmp_path, max_body_bytes=64 * 1024)
    with GatewayServer(settings, model_config=model_config(upstream_models(upstream))) as server:
        yield server


# A throw-away PostgreSQL cluster (tests/postgres.py), for the tests of the shared store and keys.
from tests.postgres import postgres_cluster, postgres_url  # noqa: E402, F401
