"""Exports leave the way the passthrough does: through HTTPS_PROXY / HTTP_PROXY unless NO_PROXY matches, with
the proxy's credentials, trusting SSL_CERT_FILE. A team that reaches its LLM upstreams only through a
corporate proxy reaches Langfuse Cloud and its OpenTelemetry collector the same way; before this the
exporters ignored the proxy settings and every export failed there, retried for ever."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.connect_proxy import ConnectProxy, start_connect_proxy
from tests.fakes.otlp_receiver import OtlpReceiver
from tests.fakes.tls import CertAuthority
from tests.fakes.upstream import FakeUpstream
from tests.tracing.conftest import PK, SK
from tests.tracing.test_genai_export import chat, gateway, otel, wait_for

__all__ = ["otel"]  # the OTLP collector fixture, shared with the GenAI export tests
CREDENTIALS = ("egress-user", "pr0xy-pa55word")


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    fake = start_connect_proxy(credentials=CREDENTIALS)
    yield fake
    fake.stop()


@pytest.fixture
def langfuse_tls(ca: CertAuthority) -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver(credentials=(PK, SK), ssl_context=ca.server_context()).start()
    yield receiver
    receiver.stop()


def through(proxy: ConnectProxy, ca: CertAuthority, **more: Any) -> dict[str, Any]:
    """Both proxies with our credentials, and the test CA trusted."""
    return {
        "https_proxy": proxy.url(CREDENTIALS),
        "http_proxy": proxy.url(CREDENTIALS),
        "ssl_cert_file": str(ca.ca_path),
    } | more


def test_langfuse_over_https_tunnels_through_the_proxy_and_otel_goes_through_it_too(
    tmp_path: Path,
    upstream: FakeUpstream,
    proxy: ConnectProxy,
    langfuse_tls: OtlpReceiver,
    otel: OtlpReceiver,
    ca: CertAuthority,
) -> None:
    with gateway(tmp_path, upstream, langfuse_tls, otel.port, **through(proxy, ca)) as gw:
        trace_id = chat(gw, "through the proxy")
        wait_for(langfuse_tls, [trace_id])
        wait_for(otel, [trace_id])
    assert f"127.0.0.1:{langfuse_tls.port}" in proxy.tunnels  # CONNECT, then TLS end to end with Langfuse
    assert otel.traces_url in proxy.forwarded  # plain http: the absolute URL to the proxy
    assert all(r.authorization is not None for r in proxy.requests)  # the proxy took every request's credentials


def test_no_proxy_sends_exports_direct(
    tmp_path: Path,
    upstream: FakeUpstream,
    proxy: ConnectProxy,
    langfuse_tls: OtlpReceiver,
    otel: OtlpReceiver,
    ca: CertAuthority,
) -> None:
    with gateway(tmp_path, upstream, langfuse_tls, otel.port, **through(proxy, ca, no_proxy="127.0.0.1")) as gw:
        trace_id = chat(gw, "direct")
        wait_for(langfuse_tls, [trace_id])
        wait_for(otel, [trace_id])
    assert proxy.requests == []


def test_a_proxy_refusing_our_credentials_holds_exports_until_they_are_fixed(
    tmp_path: Path,
    upstream: FakeUpstream,
    proxy: ConnectProxy,
    otel: OtlpReceiver,
    langfuse_tls: OtlpReceiver,
    ca: CertAuthority,
) -> None:
    """A 407 is our proxy refusing, not Langfuse: the records stay in the outbox and go after a restart with the
    right credentials, instead of being dropped as a rejected export."""
    wrong = through(proxy, ca, https_proxy=proxy.url(("egress-user", "wrong")), http_proxy=None)
    with gateway(tmp_path, upstream, langfuse_tls, otel.port, **wrong) as gw:
        trace_id = chat(gw, "held")
        wait_for(otel, [trace_id])  # HTTP_PROXY unset: the collector is reached direct, and is not held up
        deadline = time.monotonic() + 20
        while not proxy.tunnels:
            assert time.monotonic() < deadline, "the export never tried the proxy"
            time.sleep(0.05)
    assert not langfuse_tls.spans_for_trace(trace_id)
    with gateway(tmp_path, upstream, langfuse_tls, otel.port, **through(proxy, ca, http_proxy=None)):
        wait_for(langfuse_tls, [trace_id])
