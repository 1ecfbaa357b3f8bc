"""Outbound proxies and CA trust for the passthrough, against a real CONNECT proxy and a TLS upstream on
loopback whose certificate a throw-away CA signed (as a corporate, TLS-inspecting CA would)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from llm_scope.providers.egress import bypasses, parse_no_proxy, parse_proxy, verify_setting
from tests.conftest import UPSTREAM_KEY
from tests.fakes.connect_proxy import ConnectProxy, start_connect_proxy
from tests.fakes.tls import CertAuthority
from tests.fakes.upstream import FakeUpstream
from tests.fakes.wire import fake_reply
from tests.gateway_server import GatewayServer, make_settings, model_config

CREDENTIALS = ("alice", "pa:ss@word/1")  # characters that must be percent-encoded in the proxy URL
MESSAGES = [{"role": "user", "content": "through the proxy"}]
BASIC = "Basic " + base64.b64encode(":".join(CREDENTIALS).encode()).decode()  # what curl sends for the URL's


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "bypass"),
    [
        ("", "api.openai.com", 443, False),
        ("*", "api.openai.com", 443, True),
        ("openai.com", "api.openai.com", 443, True),
        ("openai.com", "openai.com", 443, True),
        (".openai.com", "openai.com", 443, True),
        (".openai.com", "api.openai.com", 443, True),
        ("openai.com", "notopenai.com", 443, False),
        ("api.openai.com", "openai.com", 443, False),
        (" internal , openai.com ", "API.OpenAI.com.", 443, True),
        ("openai.com:8443", "api.openai.com", 443, False),
        ("openai.com:443", "api.openai.com", 443, True),
        ("10.0.0.0/8", "10.1.2.3", 80, True),
        ("10.0.0.0/8", "11.1.2.3", 80, False),
        ("127.0.0.1", "127.0.0.1", 8000, True),
        ("127.0.0.1:9000", "127.0.0.1", 8000, False),
        ("::1", "::1", 443, True),
        ("[::1]:8443", "::1", 8443, True),
        ("[::1]:8443", "::1", 443, False),
        ("localhost", "127.0.0.1", 443, False),  # names are not resolved, as in curl
        ("*.openai.com", "api.openai.com", 443, False),  # no wildcards inside names, as in curl
    ],
)
def test_no_proxy_matches_as_curl_does(no_proxy: str, host: str, port: int, bypass: bool) -> None:
    everything, rules = parse_no_proxy(no_proxy)
    assert bypasses(host, port, everything, rules) is bypass


@pytest.mark.parametrize(
    ("value", "setting"),
    [(None, True), (True, True), (False, False), ("false", False), ("False", False), ("0", False),
     ("true", True), ("/etc/corp-ca.pem", "/etc/corp-ca.pem")],
)  # fmt: skip
def test_ssl_verify_takes_litellm_values(value: Any, setting: bool | str) -> None:
    assert verify_setting(value) == setting


def test_proxy_urls() -> None:
    proxy = parse_proxy("http://alice:pa%3Ass%40word%2F1@corp-proxy:3128", "HTTPS_PROXY")
    assert (proxy.host, proxy.port, proxy.shown) == ("corp-proxy", 3128, "corp-proxy:3128")
    assert proxy.authorization == "Basic YWxpY2U6cGE6c3NAd29yZC8x"  # alice:pa:ss@word/1
    assert parse_proxy("corp-proxy:8080", "HTTP_PROXY").authorization is None
    with pytest.raises(ValueError, match="HTTPS_PROXY: only http:// proxies are supported"):
        parse_proxy("socks5://corp-proxy:1080", "HTTPS_PROXY")


@pytest.fixture(scope="module")
def tls_upstream(ca: CertAuthority) -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start(ssl_context=ca.server_context())
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def proxy() -> Iterator[ConnectProxy]:
    fake = start_connect_proxy(credentials=CREDENTIALS)
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def fresh(proxy: ConnectProxy) -> None:
    proxy.reset()


def models(upstream: FakeUpstream, **params: Any) -> Any:
    return model_config(
        [
            {
                "model_name": "gpt-tls",
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_base": upstream.openai_base_url,
                    "api_key": UPSTREAM_KEY,
                    **params,
                },
            },
            {
                "model_name": "claude-tls",
                "litellm_params": {
                    "model": "anthropic/claude-haiku-4-5",
                    "api_base": upstream.url,
                    "api_key": UPSTREAM_KEY,
                    **params,
                },
            },
        ]
    )


def chat(gw: GatewayServer, *, stream: bool = False) -> str:
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
    if stream:
        chunks = client.chat.completions.create(model="gpt-tls", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    answer = client.chat.completions.create(model="gpt-tls", messages=MESSAGES)  # type: ignore[arg-type]
    return answer.choices[0].message.content or ""


def test_https_through_a_connect_tunnel_stream_and_not(
    tmp_path: Path, proxy: ConnectProxy, tls_upstream: FakeUpstream, ca: CertAuthority
) -> None:
    settings = make_settings(tmp_path, https_proxy=proxy.url(CREDENTIALS))
    with GatewayServer(settings, model_config=models(tls_upstream, ssl_verify=str(ca.ca_path))) as gw:
        assert chat(gw) == fake_reply("through the proxy")
        assert chat(gw, stream=True) == fake_reply("through the proxy")
        claude = anthropic.Anthropic(base_url=gw.url, api_key="unused", max_retries=0)
        with claude.messages.stream(model="claude-tls", max_tokens=50, messages=MESSAGES) as events:  # type: ignore[arg-type]
            assert events.get_final_text() == fake_reply("through the proxy")
    authority = f"localhost:{tls_upstream.port}"
    assert proxy.tunnels and set(proxy.tunnels) == {authority}
    assert {r.authorization for r in proxy.requests} == {BASIC}
    assert tls_upstream.last_request().headers["x-api-key"] == UPSTREAM_KEY  # inside the tunnel, end to end


def test_ssl_cert_file_is_the_default_trust(tmp_path: Path, tls_upstream: FakeUpstream, ca: CertAuthority) -> None:
    with GatewayServer(make_settings(tmp_path, ssl_cert_file=str(ca.ca_path)), model_config=models(tls_upstream)) as gw:
        assert chat(gw, stream=True) == fake_reply("through the proxy")


def test_no_proxy_goes_direct(
    tmp_path: Path, proxy: ConnectProxy, tls_upstream: FakeUpstream, ca: CertAuthority
) -> None:
    settings = make_settings(tmp_path, https_proxy=proxy.url(CREDENTIALS), no_proxy="example.com, .localhost")
    with GatewayServer(settings, model_config=models(tls_upstream, ssl_verify=str(ca.ca_path))) as gw:
        assert chat(gw) == fake_reply("through the proxy")
    assert proxy.requests == []


def test_plain_http_through_the_http_proxy(tmp_path: Path, proxy: ConnectProxy, upstream: FakeUpstream) -> None:
    upstream.reset()
    settings = make_settings(tmp_path, http_proxy=proxy.url(CREDENTIALS), https_proxy="http://127.0.0.1:9")
    with GatewayServer(settings, model_config=models(upstream)) as gw:
        assert chat(gw) == fake_reply("through the proxy")
        assert chat(gw, stream=True) == fake_reply("through the proxy")
    # The second call reuses the kept-alive connection to the proxy, which this fake pipes through unread.
    assert proxy.forwarded[0] == f"{upstream.openai_base_url}/chat/completions"
    assert proxy.tunnels == [] and len(upstream.requests) == 2
    assert {r.authorization for r in proxy.requests} == {BASIC}


def test_an_untrusted_certificate_is_a_502_naming_the_tls_error(
    tmp_path: Path, proxy: ConnectProxy, tls_upstream: FakeUpstream
) -> None:
    settings = make_settings(tmp_path, https_proxy=proxy.url(CREDENTIALS))
    with GatewayServer(settings, model_config=models(tls_upstream)) as gw:
        r = httpx.post(gw.url + "/v1/chat/completions", json={"model": "gpt-tls", "messages": MESSAGES}, timeout=30)
        m = httpx.post(
            gw.url + "/v1/messages", json={"model": "claude-tls", "max_tokens": 5, "messages": MESSAGES}, timeout=30
        )
    assert r.status_code == 502 and m.status_code == 502
    message = r.json()["error"]["message"]
    assert "TLS certificate verification failed" in message and "unable to get local issuer certificate" in message
    assert "ssl_verify" in message and f"proxy 127.0.0.1:{proxy.port}" in message
    assert m.json()["error"]["message"] == message  # the same words in Anthropic's shape
    assert CREDENTIALS[1] not in r.text


def test_ssl_verify_false_skips_verification(tmp_path: Path, tls_upstream: FakeUpstream) -> None:
    with GatewayServer(make_settings(tmp_path), model_config=models(tls_upstream, ssl_verify=False)) as gw:
        assert chat(gw) == fake_reply("through the proxy")


def test_wrong_proxy_credentials_are_a_502_naming_the_407(
    tmp_path: Path, proxy: ConnectProxy, tls_upstream: FakeUpstream, ca: CertAuthority
) -> None:
    settings = make_settings(tmp_path, https_proxy=proxy.url(("alice", "wrong-password-123")))
    with GatewayServer(settings, model_config=models(tls_upstream, ssl_verify=str(ca.ca_path))) as gw:
        r = httpx.post(gw.url + "/v1/chat/completions", json={"model": "gpt-tls", "messages": MESSAGES}, timeout=30)
    assert r.status_code == 502
    assert "refused the tunnel" in r.text and "HTTP 407" in r.text
    assert "wrong-password-123" not in r.text


def test_a_missing_ca_bundle_is_named(tmp_path: Path, tls_upstream: FakeUpstream) -> None:
    missing = str(tmp_path / "no-such-ca.pem")
    with GatewayServer(make_settings(tmp_path), model_config=models(tls_upstream, ssl_verify=missing)) as gw:
        r = httpx.post(gw.url + "/v1/chat/completions", json={"model": "gpt-tls", "messages": MESSAGES}, timeout=30)
    assert r.status_code == 502
    assert (
        r.json()["error"]["message"] == f"cannot load the CA bundle {missing} (ssl_verify): No such file or directory"
    )
