"""The way out for the native passthrough: outbound proxies (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) and TLS trust.

Teams behind a corporate egress proxy reach OpenAI and Anthropic only through it, often with a TLS-inspecting
proxy whose CA must be trusted. LiteLLM's path honours the same variables through its own HTTP clients; this
module gives the hand-written passthrough client (`upstream_http.py`) the same behaviour, with curl's rules:

- `https://` upstreams go through `HTTPS_PROXY` in a CONNECT tunnel, then TLS end to end with the upstream;
- `http://` upstreams go through `HTTP_PROXY` as absolute-form requests;
- proxy credentials come from the proxy URL (`http://user:pass@proxy:3128`) as `Proxy-Authorization: Basic`;
- `NO_PROXY` is matched as curl matches it (see `bypasses`).

TLS trust is chosen per deployment with LiteLLM's name, `ssl_verify`: false (no verification), a CA bundle
path, or true (default: `SSL_CERT_FILE` if set, else the system store). The environment is read by
`settings.py` only and arrives here as plain values.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from ..errors import UpstreamError

FALSE_WORDS = frozenset({"false", "0", "no", "off"})
TRUE_WORDS = frozenset({"true", "1", "yes", "on", ""})
MAX_CONNECT_ANSWER = 16 * 1024  # a proxy's answer to CONNECT is a status line and a few headers
P = TypeVar("P", bound=asyncio.Protocol)


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    authorization: str | None  # the whole `Proxy-Authorization` value, never logged or shown

    @property
    def shown(self) -> str:
        """How errors name the proxy: host and port, never its credentials."""
        return f"{self.host}:{self.port}"


def parse_proxy(url: str, variable: str) -> Proxy:
    """`http://[user:pass@]host[:port]`, or curl's scheme-less `host:port`; a precise error otherwise."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http":
        raise ValueError(
            f"{variable}: only http:// proxies are supported (got a {parts.scheme}:// proxy); "
            "the tunnel to an https upstream is still TLS end to end"
        )
    if not parts.hostname:
        raise ValueError(f"{variable}: no proxy host in the URL")
    try:
        port = parts.port or 80
    except ValueError:
        raise ValueError(f"{variable}: the proxy port is not a number") from None
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return Proxy(parts.hostname, port, authorization)


@dataclass(frozen=True, slots=True)
class NoProxyRule:
    name: str  # a lower-case host name without leading dot, "" for a bare IP/network rule
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    port: int | None


def parse_no_proxy(value: str) -> tuple[bool, tuple[NoProxyRule, ...]]:
    """(everything bypasses, rules). Entries: `*`, `host`, `.domain`, `host:port`, IPs, CIDR, `[v6]:port`."""
    rules = []
    for raw in value.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True, ()
        port = None
        if entry.startswith("["):  # [::1] or [::1]:8080
            host, _, rest = entry[1:].partition("]")
            if rest.startswith(":") and rest[1:].isdigit():
                port = int(rest[1:])
            entry = host
        elif entry.count(":") == 1:  # host:port (a bare IPv6 address has several colons)
            host, _, maybe_port = entry.partition(":")
            if maybe_port.isdigit():
                entry, port = host, int(maybe_port)
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            rules.append(NoProxyRule(entry.lstrip(".").rstrip("."), None, port))
        else:
            rules.append(NoProxyRule("", network, port))
    return False, tuple(rules)


def bypasses(host: str, port: int, everything: bool, rules: tuple[NoProxyRule, ...]) -> bool:
    """curl's NO_PROXY match: a name matches itself and every subdomain (`example.com` and `.example.com`
    both cover `api.example.com` and `example.com`), IPs match exactly or by CIDR, and an entry with a
    port covers that port only. No wildcards inside names; `*` alone means every host."""
    if everything:
        return True
    name = host.lower().strip("[]").rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(name)
    except ValueError:
        address = None
    for rule in rules:
        if rule.port is not None and rule.port != port:
            continue
        if rule.network is not None:
            if address is not None and address.version == rule.network.version and address in rule.network:
                return True
        elif rule.name and (name == rule.name or name.endswith("." + rule.name)):
            return True
    return False


def verify_setting(value: Any) -> bool | str:
    """LiteLLM's `ssl_verify`: a bool, a word for one (from YAML or `os.environ/...`), or a CA bundle path."""
    if value is None or isinstance(value, bool):
        return value is not False
    text = str(value).strip()
    if text.lower() in FALSE_WORDS:
        return False
    if text.lower() in TRUE_WORDS:
        return True
    return text


class Egress:
    """Which proxy a target goes through, and which TLS context trusts it; contexts are made once each."""

    def __init__(
        self,
        *,
        https_proxy: str | None = None,
        http_proxy: str | None = None,
        no_proxy: str | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.https_proxy = parse_proxy(https_proxy, "HTTPS_PROXY") if https_proxy else None
        self.http_proxy = parse_proxy(http_proxy, "HTTP_PROXY") if http_proxy else None
        self._no_proxy_all, self._no_proxy = parse_no_proxy(no_proxy or "")
        self.ca_file = ca_file
        self._contexts: dict[bool | str, ssl.SSLContext] = {}

    def proxy_for(self, host: str, port: int, tls: bool) -> Proxy | None:
        proxy = self.https_proxy if tls else self.http_proxy
        if proxy is None or bypasses(host, port, self._no_proxy_all, self._no_proxy):
            return None
        return proxy

    def tls_context(self, verify: bool | str) -> ssl.SSLContext:
        context = self._contexts.get(verify)
        if context is None:
            context = self._contexts[verify] = self._make_context(verify)
        return context

    def _make_context(self, verify: bool | str) -> ssl.SSLContext:
        if verify is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        cafile = verify if isinstance(verify, str) else self.ca_file
        try:
            return ssl.create_default_context(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            source = "ssl_verify" if isinstance(verify, str) else "SSL_CERT_FILE"
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise UpstreamError(f"cannot load the CA bundle {cafile} ({source}): {reason}") from None


class Target:
    """A parsed upstream URL, cached: deployments call the same few URLs over and over. `proxy`: the
    outbound proxy it goes through (a CONNECT tunnel for https; absolute-form requests for http)."""

    __slots__ = ("host", "netloc", "path", "port", "proxy", "tls")

    def __init__(self, url: str, egress: Egress) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UpstreamError(f"invalid upstream URL scheme or host: {parts.scheme}://{parts.netloc}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.netloc = parts.netloc.rpartition("@")[2]
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.proxy: Proxy | None = egress.proxy_for(self.host, self.port, self.tls)
        if self.proxy is not None and not self.tls:  # a plain-HTTP proxy wants the absolute URL
            self.path = f"http://{self.netloc}{self.path}"


def describe_tls_error(exc: ssl.SSLError) -> str:
    """Name the TLS failure (an expired or untrusted certificate reads differently from a protocol error)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or exc.reason or "certificate rejected"
        return (
            f"TLS certificate verification failed: {detail} (trust its CA with the deployment's ssl_verify: "
            "<CA bundle path> or SSL_CERT_FILE)"
        )
    return f"TLS handshake failed: {exc.reason or type(exc).__name__}"


class _TunnelHandshake(asyncio.Protocol):
    """Reads the proxy's answer to CONNECT; after it, the socket carries the upstream's TLS."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.answer = loop.create_future()
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" in self.buffer and not self.answer.done():
            self.answer.set_result(self.buffer)
        elif len(self.buffer) > MAX_CONNECT_ANSWER and not self.answer.done():
            self.answer.set_exception(UpstreamError("the proxy's answer to CONNECT is too long"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(ConnectionResetError("the proxy closed the connection"))


async def open_tunnel(
    loop: asyncio.AbstractEventLoop,
    proxy: Proxy,
    host: str,
    port: int,
    context: ssl.SSLContext,
    protocol_factory: Callable[[], P],
) -> tuple[asyncio.Transport, P]:
    """CONNECT host:port through the proxy, then TLS with the upstream inside the tunnel.

    Raises UpstreamError for a proxy that refuses (407 and friends), OSError/ssl.SSLError as a direct
    connection would, so the caller words them the same way."""
    transport, handshake = await loop.create_connection(lambda: _TunnelHandshake(loop), proxy.host, proxy.port)
    try:
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        lines = [f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"]
        if proxy.authorization:
            lines.append(f"Proxy-Authorization: {proxy.authorization}\r\n")
        transport.write(("".join(lines) + "\r\n").encode("latin-1"))
        answer: bytes = await handshake.answer
        status_line = answer.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise UpstreamError(f"proxy {proxy.shown} answered CONNECT with something that is not HTTP")
        if not 200 <= int(parts[1]) < 300:
            reason = parts[2] if len(parts) > 2 else ""
            hint = " (check the user and password in HTTPS_PROXY)" if parts[1] == "407" else ""
            raise UpstreamError(
                f"proxy {proxy.shown} refused the tunnel to {authority}: HTTP {parts[1]} {reason}".rstrip() + hint
            )
        protocol = protocol_factory()
        tls_transport = await loop.start_tls(transport, protocol, context, server_hostname=host)
        if tls_transport is None:  # only for a transport closed under us
            raise ConnectionResetError("the tunnel closed during the TLS handshake")
        protocol.connection_made(tls_transport)  # start_tls does not announce the new transport itself
        return tls_transport, protocol
    except BaseException:
        transport.close()
        raise
