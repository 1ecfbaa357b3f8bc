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

from tests.conftest import upstream_models
from tests.fakes.connect_proxy import ConnectProxy, start_connect_proxy
from tests.fakes.otlp_receiver import TRACES_PATH, OtlpReceiver, start_otlp_receiver
from tests.fakes.tls import CertAuthority, make_test_ca
from tests.fakes.upstream import FakeUpstream
from tests.gateway_server import GatewayServer, make_settings, model_config
from tests.tracing.conftest import PK, SK

CREDENTIALS = ("egress-user", "pr0xy-pa55word")


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertAuthority:
    made = make_test_ca(tmp_path_factory.mktemp("ca"))
    if made is None:
        pytest.skip("no openssl command to make a test CA (scripts/system-deps.sh installs it)")
    return made


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


@pytest.fixture
def otel() -> Iterator[OtlpReceiver]:
    receiver = start_otlp_receiver()
    yield receiver
    receiver.stop()


def gateway(
    tmp_path: Path, upstream: FakeUpstream, langfuse: OtlpReceiver, otel: OtlpReceiver, **extra: Any
) -> GatewayServer:
    settings = make_settings(
        tmp_path,
        langfuse_public_key=PK,
        langfuse_secret_key=SK,
        langfuse_host=langfuse.url,
        otel_traces_endpoint=otel.traces_url,
        **extra,
    )
    return GatewayServer(settings, model_config=model_config(upstream_models(upstream)))


def call(gw: GatewayServer) -> str:
    with gw.client() as client:
        r = client.post(
            "/v1/chat/completions", json={"model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}]}
        )
    assert r.status_code == 200, r.text
    return str(r.headers["x-trace-id"])


def wait_for(receiver: OtlpReceiver, trace_id: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not receiver.spans_for_trace(trace_id):
        assert time.monotonic() < deadline, f"the call never reached {receiver.url}"
        time.sleep(0.05)


def test_langfuse_over_https_tunnels_through_the_proxy_and_otel_goes_through_it_too(
    tmp_path: Path,
    upstream: FakeUpstream,
    proxy: ConnectProxy,
    langfuse_tls: OtlpReceiver,
    otel: OtlpReceiver,
    ca: CertAuthority,
) -> None:
    settings = {
        "https_proxy": proxy.url(CREDENTIALS),
        "http_proxy": proxy.url(CREDENTIALS),
        "ssl_cert_file": str(ca.ca_path),
    }
    with gateway(tmp_path, upstream, langfuse_tls, otel, **settings) as gw:
        trace_id = call(gw)
        wait_for(langfuse_tls, trace_id)
        wait_for(otel, trace_id)
    assert f"127.0.0.1:{langfuse_tls.port}" in proxy.tunnels  # CONNECT, then TLS end to end with Langfuse
    assert f"{otel.url}{TRACES_PATH}" in proxy.forwarded  # plain http: the absolute URL to the proxy
    assert all(r.authorization is not None for r in proxy.requests)  # the proxy took every request's credentials


def test_no_proxy_sends_exports_direct(
    tmp_path: Path,
    upstream: FakeUpstream,
    proxy: ConnectProxy,
    langfuse_tls: OtlpReceiver,
    otel: OtlpReceiver,
    ca: CertAuthority,
) -> None:
    settings = {
        "https_proxy": proxy.url(CREDENTIALS),
        "http_proxy": proxy.url(CREDENTIALS),
        "no_proxy": "127.0.0.1",
        "ssl_cert_file": str(ca.ca_path),
    }
    with gateway(tmp_path, upstream, langfuse_tls, otel, **settings) as gw:
        trace_id = call(gw)
        wait_for(langfuse_tls, trace_id)
        wait_for(otel, trace_id)
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
    settings = {"https_proxy": proxy.url(("egress-user", "wrong")), "ssl_cert_file": str(ca.ca_path)}
    with gateway(tmp_path, upstream, langfuse_tls, otel, **settings) as gw:
        trace_id = call(gw)
        wait_for(otel, trace_id)  # HTTP_PROXY unset: the collector is reached direct, and is not held up
        deadline = time.monotonic() + 20
        while not proxy.tunnels:
            assert time.monotonic() < deadline, "the export never tried the proxy"
            time.sleep(0.05)
    assert not langfuse_tls.spans_for_trace(trace_id)
    settings["https_proxy"] = proxy.url(CREDENTIALS)
    with gateway(tmp_path, upstream, langfuse_tls, otel, **settings):
        wait_for(langfuse_tls, trace_id)
