"""Langfuse sink: the only module that speaks Langfuse's HTTP API.

Langfuse Cloud no longer takes the legacy batch ingestion API, so calls go in as OTLP/HTTP. We encode the
protobuf ourselves (otlp.py) instead of running the OpenTelemetry SDK: a CallRecord is a finished fact pulled
from a durable outbox, not a live operation to instrument, and the SDK's own exporter drops data on 500s and
full queues. Span ids are stable per record, so a retried export rewrites the same observations instead of
duplicating them; that is what lets the outbox retry whole batches after partial failures.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Any, Final

import aiohttp

from llm_scope.types import CallRecord

from .otlp import SDK_NAME, RecordEncoder, validate_environment

_log = logging.getLogger(__name__)

OTLP_TRACES_PATH: Final = "/api/public/otel/v1/traces"
SCORES_PATH: Final = "/api/public/scores"
# Langfuse rejects values above 4, and routes lower ones through its older dual-write path.
INGESTION_VERSION: Final = "4"
# Uncompressed bytes per POST: Langfuse refuses bodies of a few MB, and a 413 would never go away.
MAX_REQUEST_BYTES: Final = 3_000_000
# Langfuse drops events whose environment does not match this, so we refuse it at start-up instead.
# Level 1, not 6: CPU is the scarce resource here, not Langfuse's bandwidth. Measured on 500 records per
# body: identical chat calls 73 vs 71 bytes/record for 2.3 vs 6.0 µs/record; varied prompts 600 vs 520 for
# 14 vs 42 µs; 50 KB prompts 19.4 vs 17.5 KB for 0.46 vs 2.3 ms. Level 1 keeps nearly all the redundancy
# between records (the same keys, models and system prompts) that makes batches compress at all.
_GZIP_LEVEL: Final = 1


def build_export_request(
    records: Sequence[CallRecord], *, environment: str, release: str, service_name: str = SDK_NAME
) -> bytes:
    """Serialize `records` as one OTLP request; the same records always give the same bytes."""
    encoder = RecordEncoder(environment=environment, release=release, service_name=service_name)
    return encoder.request([encoder.record(record) for record in records])


def basic_auth(public_key: str, secret_key: str) -> str:
    """The full `Authorization` header value Langfuse expects: Basic base64(public:secret)."""
    token = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode("ascii")
    return f"Basic {token}"


def otlp_headers(public_key: str, secret_key: str, release: str) -> dict[str, str]:
    """Headers for a gzip'd OTLP/protobuf POST; x-langfuse-* name us in Langfuse's ingestion stats."""
    return {
        "Authorization": basic_auth(public_key, secret_key),
        "Content-Type": "application/x-protobuf",
        "Content-Encoding": "gzip",
        "x-langfuse-ingestion-version": INGESTION_VERSION,
        "x-langfuse-public-key": public_key,
        "x-langfuse-sdk-name": SDK_NAME,
        "x-langfuse-sdk-version": release,
    }


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


class ExportStatus(Enum):
    OK = "ok"
    RETRYABLE = "retryable"  # Langfuse or the network is having a bad moment: keep it and try again
    REJECTED = "rejected"  # Langfuse refused it; the same bytes will be refused again (401 may be config)


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What happened to one export; the caller owns retry and backoff, so nothing here raises."""

    status: ExportStatus
    http_status: int | None = None  # None when no response came back
    retry_after: float | None = None  # seconds, from Retry-After
    detail: str = ""  # for logs; never contains the secret key

    @property
    def ok(self) -> bool:
        return self.status is ExportStatus.OK


def _classify(http_status: int) -> ExportStatus:
    if 200 <= http_status < 300:
        return ExportStatus.OK
    if http_status in (408, 429) or http_status >= 500:
        return ExportStatus.RETRYABLE
    return ExportStatus.REJECTED  # other 4xx, and 1xx/3xx: we never follow redirects with credentials


class LangfuseExporter:
    """Delivers CallRecords (and scores) to one Langfuse project; one pooled HTTP session, made lazily."""

    def __init__(
        self,
        *,
        host: str,
        public_key: str,
        secret_key: str,
        environment: str,
        release: str,
        timeout: float = 10.0,
        max_request_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        if not host.startswith(("http://", "https://")):
            raise ValueError(f"Langfuse host must be an http(s) URL, got {host!r}")
        self._host = host.rstrip("/")
        self._environment = validate_environment(environment)
        self._release = release
        self._timeout = timeout
        self._max_request_bytes = max_request_bytes
        self._encoder = RecordEncoder(environment=self._environment, release=release)
        self._otlp_headers = otlp_headers(public_key, secret_key, release)
        self._score_headers = {
            "Authorization": basic_auth(public_key, secret_key),
            "Content-Type": "application/json",
            "x-langfuse-sdk-name": SDK_NAME,
            "x-langfuse-sdk-version": release,
        }
        self._secret_key = secret_key  # kept only to scrub it from anything we log or return
        self._session: aiohttp.ClientSession | None = None

    async def export(self, records: Sequence[CallRecord]) -> ExportResult:
        """POST the records, stopping at the first failed chunk; retrying all is safe: span ids are stable."""
        if not records:
            return ExportResult(ExportStatus.OK)
        # Encoded inline: this runs in the trace helper process, where no client waits on the event loop,
        # and a thread would only add GIL hand-offs.
        bodies = self._encode(records)
        result = ExportResult(ExportStatus.OK)
        for body in bodies:
            result = await self._post(OTLP_TRACES_PATH, body, self._otlp_headers)
            if not result.ok:
                break
        return result

    async def send_score(self, score: Mapping[str, Any]) -> ExportResult:
        """POST one score (traceId, name, value, dataType, comment, id); an `id` makes retries idempotent."""
        body = json.dumps(score, ensure_ascii=False, default=str).encode()
        return await self._post(SCORES_PATH, body, self._score_headers)

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _encode(self, records: Sequence[CallRecord]) -> list[bytes]:
        """Gzipped requests of at most `max_request_bytes` each; a record's two spans stay together."""
        bodies: list[bytes] = []
        chunk: list[bytes] = []
        size = 0
        for record in records:
            try:
                encoded = self._encoder.record(record)
            except Exception:  # it would fail the same way on every retry: don't let it hold up the rest
                _log.exception("langfuse: dropping unencodable record, trace %s", record.trace_id)
                continue
            if chunk and size + len(encoded) > self._max_request_bytes:
                bodies.append(self._compress(chunk))
                chunk, size = [], 0
            chunk.append(encoded)
            size += len(encoded)
        if chunk:
            bodies.append(self._compress(chunk))
        return bodies

    def _compress(self, records: Sequence[bytes]) -> bytes:
        return gzip.compress(self._encoder.request(records), compresslevel=_GZIP_LEVEL, mtime=0)

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use because a ClientSession binds to the running loop, which __init__ may lack.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        return self._session

    async def _post(self, path: str, body: bytes, headers: Mapping[str, str]) -> ExportResult:
        url = self._host + path
        try:
            async with self._client().post(url, data=body, headers=headers, allow_redirects=False) as resp:
                text = await resp.text(errors="replace")  # read fully so the connection goes back to the pool
                http_status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            detail = self._scrub(f"{type(exc).__name__}: {exc}")
            _log.warning("langfuse: POST %s failed, will retry: %s", url, detail)
            return ExportResult(ExportStatus.RETRYABLE, detail=detail)

        status = _classify(http_status)
        if status is ExportStatus.OK:
            return ExportResult(status, http_status=http_status)
        detail = self._scrub(text[:500])
        if status is ExportStatus.RETRYABLE:
            _log.warning("langfuse: POST %s -> HTTP %d, will retry: %s", url, http_status, detail)
        else:
            hint = " (check the Langfuse keys and host)" if http_status in (401, 403) else ""
            _log.error("langfuse: POST %s -> HTTP %d, rejected%s: %s", url, http_status, hint, detail)
        return ExportResult(status, http_status=http_status, retry_after=retry_after, detail=detail)

    def _scrub(self, text: str) -> str:
        # Belt and braces: a proxy or error page could echo what we sent.
        if not self._secret_key:
            return text
        for secret in (self._secret_key, self._otlp_headers["Authorization"].removeprefix("Basic ")):
            text = text.replace(secret, "***")
        return text
