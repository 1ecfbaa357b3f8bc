"""What every exporter shares: the Exporter protocol, the outcome of one export, and the HTTP POST itself.

The only module that speaks aiohttp. An exporter encodes records its own way (Langfuse's span layout, or
standard OpenTelemetry GenAI spans) and hands the bytes to `HttpPoster`, which says whether they were taken,
should be retried, or were refused for good; the caller owns retry and backoff, so nothing here raises.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from ..types import CallRecord
from .splice import Segment, gzip_spliced, size_of

if TYPE_CHECKING:  # imported where a session is made: only the trace helper posts, and aiohttp is ~9 MB a worker
    import aiohttp

_log = logging.getLogger(__name__)


class ExportStatus(Enum):
    OK = "ok"
    RETRYABLE = "retryable"  # the backend or the network is having a bad moment: keep it and try again
    REJECTED = "rejected"  # the backend refused it; the same bytes will be refused again (401 may be config)


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What happened to one export."""

    status: ExportStatus
    http_status: int | None = None  # None when no response came back
    retry_after: float | None = None  # seconds, from Retry-After
    detail: str = ""  # for logs; never contains a secret

    @property
    def ok(self) -> bool:
        return self.status is ExportStatus.OK


class Exporter(Protocol):
    """A destination for finished calls. `name` keys its place in the durable outbox; exporting the same
    records twice must leave the backend as exporting them once (stable span ids), since after a crash or a
    partial failure a batch is sent again."""

    name: str

    async def export(self, records: Sequence[CallRecord]) -> ExportResult: ...

    async def aclose(self) -> None: ...


def classify(http_status: int) -> ExportStatus:
    if 200 <= http_status < 300:
        return ExportStatus.OK
    # 407: our proxy, not the backend, refused: the records are fine and go once its credentials are fixed.
    if http_status in (407, 408, 429) or http_status >= 500:
        return ExportStatus.RETRYABLE
    return ExportStatus.REJECTED  # other 4xx, and 1xx/3xx: we never follow redirects with credentials


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None when absent or junk."""
    if not value:
        return None
    if value.strip().isdecimal():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def gzipped_chunks(
    records: Sequence[CallRecord],
    encode: Callable[[CallRecord], list[Segment]],
    request: Callable[[Sequence[Sequence[Segment]]], list[Segment]],
    *,
    max_bytes: int,
    label: str,
) -> list[bytes]:
    """Gzipped requests of at most `max_bytes` uncompressed each (backends refuse bodies of a few MB, and a
    413 would never go away). A record that cannot be encoded would fail the same way on every retry: it is
    logged and left out rather than holding up the rest. Records come as segments (`splice`): their large
    parts compressed once, spliced in rather than compressed again, and the request never joined."""
    bodies: list[bytes] = []
    chunk: list[list[Segment]] = []
    size = 0
    for record in records:
        try:
            encoded = encode(record)
        except Exception:
            _log.exception("%s: dropping unencodable record, trace %s", label, record.trace_id)
            continue
        length = size_of(encoded)
        if chunk and size + length > max_bytes:
            bodies.append(gzip_spliced(request(chunk)))
            chunk, size = [], 0
        chunk.append(encoded)
        size += length
    if chunk:
        bodies.append(gzip_spliced(request(chunk)))
    return bodies


@dataclass(frozen=True, slots=True)
class Route:
    """How an exporter's requests leave the host, chosen at start-up as the passthrough's are: the outbound
    proxy (HTTPS_PROXY / HTTP_PROXY unless NO_PROXY matches the backend) and the CA bundle to trust
    (SSL_CERT_FILE, for a TLS-inspecting proxy). Teams that reach their LLM upstreams only through a proxy
    reach Langfuse Cloud the same way."""

    proxy: str | None = None  # http://host:port, without credentials
    proxy_authorization: str | None = None  # the whole Proxy-Authorization value; never logged
    ca_file: str | None = None


DIRECT = Route()  # no proxy, the default trust


class HttpPoster:
    """POSTs bodies to one backend over one pooled session, made lazily (it binds to the running loop)."""

    def __init__(self, *, label: str, timeout: float, secrets: Sequence[str] = (), route: Route = DIRECT) -> None:
        self._label = label
        self._timeout = timeout
        self._secrets = [s for s in secrets if s]  # scrubbed from anything we log or return
        self._route = route
        self._proxy_headers = {"Proxy-Authorization": route.proxy_authorization} if route.proxy_authorization else None
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> ExportResult:
        import aiohttp

        try:
            if self._proxy_headers and url.startswith("http://"):  # absolute-form: the proxy reads them here
                headers = {**headers, **self._proxy_headers}
            async with self._client().post(
                url,
                data=body,
                headers=headers,
                allow_redirects=False,
                proxy=self._route.proxy,
                proxy_headers=self._proxy_headers,
            ) as resp:
                text = await resp.text(errors="replace")  # read fully so the connection goes back to the pool
                http_status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            detail = self.scrub(f"{type(exc).__name__}: {exc}")
            _log.warning("%s: POST %s failed, will retry: %s", self._label, url, detail)
            return ExportResult(ExportStatus.RETRYABLE, detail=detail)
        status = classify(http_status)
        if status is ExportStatus.OK:
            return ExportResult(status, http_status=http_status)
        detail = self.scrub(text[:500])
        if status is ExportStatus.RETRYABLE:
            _log.warning("%s: POST %s -> HTTP %d, will retry: %s", self._label, url, http_status, detail)
        else:
            hint = " (check the credentials and host)" if http_status in (401, 403) else ""
            _log.error("%s: POST %s -> HTTP %d, rejected%s: %s", self._label, url, http_status, hint, detail)
        return ExportResult(status, http_status=http_status, retry_after=retry_after, detail=detail)

    def scrub(self, text: str) -> str:
        # Belt and braces: a proxy or error page could echo what we sent.
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _client(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None or self._session.closed:
            # trust_env stays off: the proxy and trust come from settings (`Route`), so .env and the environment
            # route alike, and NO_PROXY is matched as the passthrough matches it.
            connector = None
            if self._route.ca_file:
                import ssl

                connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=self._route.ca_file))
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout), connector=connector
            )
        return self._session
