"""Langfuse sink: the only module that speaks Langfuse's HTTP API.

Langfuse Cloud no longer takes the legacy batch ingestion API, so calls go in as OTLP/HTTP. We encode the
protobuf ourselves (otlp.py) instead of running the OpenTelemetry SDK: a CallRecord is a finished fact pulled
from a durable outbox, not a live operation to instrument, and the SDK's own exporter drops data on 500s and
full queues. Span ids are stable per record, so a retried export rewrites the same observations instead of
duplicating them; that is what lets the outbox retry whole batches after partial failures.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from llm_scope.types import CallRecord

from .exporting import DIRECT, ExportResult, ExportStatus, HttpPoster, Route, gzipped_chunks, parse_retry_after
from .otlp import SDK_NAME, RecordEncoder, validate_environment

__all__ = [
    "ExportResult",
    "ExportStatus",
    "LangfuseExporter",
    "basic_auth",
    "build_export_request",
    "otlp_headers",
    "parse_retry_after",
    "validate_environment",
]

OTLP_TRACES_PATH: Final = "/api/public/otel/v1/traces"
SCORES_PATH: Final = "/api/public/scores"
# Langfuse rejects values above 4, and routes lower ones through its older dual-write path.
INGESTION_VERSION: Final = "4"
# Uncompressed bytes per POST: Langfuse refuses bodies of a few MB, and a 413 would never go away.
MAX_REQUEST_BYTES: Final = 3_000_000


def build_export_request(
    records: Sequence[CallRecord], *, environment: str, release: str, version: str = "", service_name: str = SDK_NAME
) -> bytes:
    """Serialize `records` as one OTLP request; the same records always give the same bytes."""
    encoder = RecordEncoder(environment=environment, release=release, version=version, service_name=service_name)
    return encoder.request([encoder.record(record) for record in records])


def basic_auth(public_key: str, secret_key: str) -> str:
    """The full `Authorization` header value Langfuse expects: Basic base64(public:secret)."""
    token = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode("ascii")
    return f"Basic {token}"


def otlp_headers(public_key: str, secret_key: str, version: str) -> dict[str, str]:
    """Headers for a gzip'd OTLP/protobuf POST; x-langfuse-* name us in Langfuse's ingestion stats."""
    return {
        "Authorization": basic_auth(public_key, secret_key),
        "Content-Type": "application/x-protobuf",
        "Content-Encoding": "gzip",
        "x-langfuse-ingestion-version": INGESTION_VERSION,
        "x-langfuse-public-key": public_key,
        "x-langfuse-sdk-name": SDK_NAME,
        "x-langfuse-sdk-version": version,
    }


class LangfuseExporter:
    """Delivers CallRecords (and scores) to one Langfuse project."""

    name = "langfuse"

    def __init__(
        self,
        *,
        host: str,
        public_key: str,
        secret_key: str,
        environment: str,
        release: str,
        version: str = "",
        timeout: float = 10.0,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        route: Route = DIRECT,
    ) -> None:
        if not host.startswith(("http://", "https://")):
            raise ValueError(f"Langfuse host must be an http(s) URL, got {host!r}")
        self._host = host.rstrip("/")
        self._environment = validate_environment(environment)
        self._max_request_bytes = max_request_bytes
        self._encoder = RecordEncoder(environment=self._environment, release=release, version=version)
        self._otlp_headers = otlp_headers(public_key, secret_key, version)
        self._score_headers = {
            "Authorization": basic_auth(public_key, secret_key),
            "Content-Type": "application/json",
            "x-langfuse-sdk-name": SDK_NAME,
            "x-langfuse-sdk-version": version,
        }
        token = self._otlp_headers["Authorization"].removeprefix("Basic ")
        self._poster = HttpPoster(label="langfuse", timeout=timeout, secrets=(secret_key, token), route=route)

    async def export(self, records: Sequence[CallRecord]) -> ExportResult:
        """POST the records, stopping at the first failed chunk; retrying all is safe: span ids are stable."""
        if not records:
            return ExportResult(ExportStatus.OK)
        # Encoded inline: this runs in the trace helper process, where no client waits on the event loop,
        # and a thread would only add GIL hand-offs.
        bodies = self._encode(records)
        result = ExportResult(ExportStatus.OK)
        for body in bodies:
            result = await self._poster.post(self._host + OTLP_TRACES_PATH, body, self._otlp_headers)
            if not result.ok:
                break
        return result

    async def send_score(self, score: Mapping[str, Any]) -> ExportResult:
        """POST one score (traceId, name, value, dataType, comment, id); an `id` makes retries idempotent.

        Langfuse files a score without an environment under "default", away from its trace: it gets ours."""
        body = json.dumps({"environment": self._environment, **score}, ensure_ascii=False, default=str).encode()
        return await self._poster.post(self._host + SCORES_PATH, body, self._score_headers)

    async def aclose(self) -> None:
        await self._poster.aclose()

    def _encode(self, records: Sequence[CallRecord]) -> list[bytes]:
        """Gzipped requests of at most `max_request_bytes` each."""
        return gzipped_chunks(
            records,
            self._encoder.record_parts,
            self._encoder.request_parts,
            max_bytes=self._max_request_bytes,
            label="langfuse",
        )
