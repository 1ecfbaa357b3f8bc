"""The Langfuse sink: headers, small helpers, and delivery against a real server.

How a record is laid out as spans is in test_langfuse_spans.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from aiohttp import web

from llm_scope.tracing.langfuse import (
    ExportStatus,
    LangfuseExporter,
    basic_auth,
    otlp_headers,
    parse_retry_after,
    validate_environment,
)

from .langfuse_reference import TRACE_HEX, encode, reference_record, spans_of

PUBLIC, SECRET = "pk-lf-test", "sk-lf-test"

# --- headers and small helpers ----------------------------------------------------------------------------


def test_basic_auth_matches_the_sdk() -> None:
    assert basic_auth(PUBLIC, SECRET) == "Basic cGstbGYtdGVzdDpzay1sZi10ZXN0"  # from the reference request


def test_otlp_headers() -> None:
    assert otlp_headers(PUBLIC, SECRET, "1.2.3") == {  # the SDK version header names llm-scope's version
        "Authorization": "Basic cGstbGYtdGVzdDpzay1sZi10ZXN0",
        "Content-Type": "application/x-protobuf",
        "Content-Encoding": "gzip",
        "x-langfuse-ingestion-version": "4",
        "x-langfuse-public-key": PUBLIC,
        "x-langfuse-sdk-name": "llm-scope",
        "x-langfuse-sdk-version": "1.2.3",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        (" 0 ", 0.0),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date_in_the_future() -> None:
    when = datetime.fromtimestamp(datetime.now(UTC).timestamp() + 120, UTC)
    seconds = parse_retry_after(when.strftime("%a, %d %b %Y %H:%M:%S GMT"))
    assert seconds is not None and 100 < seconds <= 120


@pytest.mark.parametrize("name", ["production", "dev_1", "eu-west"])
def test_valid_environments(name: str) -> None:
    assert validate_environment(name) == name


@pytest.mark.parametrize("name", ["", "Production", "langfuse-prod", "a b", "x" * 41])
def test_invalid_environments_fail_fast(name: str) -> None:
    with pytest.raises(ValueError):
        validate_environment(name)


# --- delivery against a real server -----------------------------------------------------------------------

T = TypeVar("T")


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeLangfuse:
    """Answers each POST with the next scripted status (the last one repeats) and keeps what it got."""

    statuses: list[int] = field(default_factory=lambda: [200])
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str = "{}"
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(request.path, dict(request.headers), await request.read()))
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.statuses[min(len(self.received), len(self.statuses)) - 1]
        return web.Response(status=status, text=self.response_body, headers=self.response_headers)


@contextlib.asynccontextmanager
async def serve(fake: FakeLangfuse) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/{tail:.*}", fake.handle)
    # auto_decompress off so the test sees the bytes on the wire and can check they are gzip.
    runner = web.AppRunner(app, auto_decompress=False, shutdown_timeout=0.1, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


def exporter_for(host: str, **kwargs: Any) -> LangfuseExporter:
    options: dict[str, Any] = {"environment": "production", "release": "1.2.3", "version": "0.9.0", "timeout": 2.0}
    options |= kwargs
    return LangfuseExporter(host=host, public_key=PUBLIC, secret_key=SECRET, **options)


def with_exporter(fake: FakeLangfuse, action: Callable[[LangfuseExporter], Awaitable[T]], **kwargs: Any) -> T:
    async def main() -> T:
        async with serve(fake) as host:
            exporter = exporter_for(host, **kwargs)
            try:
                return await action(exporter)
            finally:
                await exporter.aclose()

    return asyncio.run(main())


def test_export_posts_gzipped_protobuf_with_langfuse_headers() -> None:
    fake = FakeLangfuse()
    result = with_exporter(fake, lambda e: e.export([reference_record()]))
    assert result.status is ExportStatus.OK and result.http_status == 200
    (got,) = fake.received
    assert got.path == "/api/public/otel/v1/traces"  # trailing slash on the host is tolerated
    assert got.headers["Authorization"] == "Basic cGstbGYtdGVzdDpzay1sZi10ZXN0"
    assert got.headers["Content-Type"] == "application/x-protobuf"
    assert got.headers["Content-Encoding"] == "gzip"
    assert got.headers["x-langfuse-ingestion-version"] == "4"
    assert got.headers["x-langfuse-public-key"] == PUBLIC
    assert got.headers["x-langfuse-sdk-name"] == "llm-scope"
    assert got.body[:2] == b"\x1f\x8b"
    assert gzip.decompress(got.body) == encode(reference_record(), environment="production", release="1.2.3")


def test_export_of_nothing_sends_nothing() -> None:
    fake = FakeLangfuse()
    assert with_exporter(fake, lambda e: e.export([])).ok
    assert fake.received == []


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, ExportStatus.OK),
        (207, ExportStatus.OK),
        (408, ExportStatus.RETRYABLE),
        (429, ExportStatus.RETRYABLE),
        (500, ExportStatus.RETRYABLE),
        (502, ExportStatus.RETRYABLE),
        (503, ExportStatus.RETRYABLE),
        (400, ExportStatus.REJECTED),
        (401, ExportStatus.REJECTED),
        (403, ExportStatus.REJECTED),
        (404, ExportStatus.REJECTED),
        (413, ExportStatus.REJECTED),
        (302, ExportStatus.REJECTED),
    ],
)
def test_export_classifies_http_status(status: int, expected: ExportStatus) -> None:
    fake = FakeLangfuse(statuses=[status], response_headers={"Location": "http://elsewhere.invalid/"})
    result = with_exporter(fake, lambda e: e.export([reference_record()]))
    assert (result.status, result.http_status) == (expected, status)
    assert len(fake.received) == 1  # no redirect followed, no retry inside the exporter


def test_retry_after_is_reported() -> None:
    fake = FakeLangfuse(statuses=[429], response_headers={"Retry-After": "7"})
    result = with_exporter(fake, lambda e: e.export([reference_record()]))
    assert result.status is ExportStatus.RETRYABLE and result.retry_after == 7.0


def test_rejection_is_logged_without_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    echo = f"bad credentials {SECRET} / {basic_auth(PUBLIC, SECRET)}"
    fake = FakeLangfuse(statuses=[401], response_body=echo)
    with caplog.at_level(logging.ERROR, logger="llm_scope.tracing.exporting"):
        result = with_exporter(fake, lambda e: e.export([reference_record()]))
    assert result.status is ExportStatus.REJECTED
    assert "bad credentials" in result.detail
    token = basic_auth(PUBLIC, SECRET).removeprefix("Basic ")
    assert SECRET not in result.detail and token not in result.detail
    assert caplog.records and all(SECRET not in r.getMessage() for r in caplog.records)


def test_connection_refused_is_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port any more.

    async def main() -> Any:
        exporter = exporter_for(f"http://127.0.0.1:{port}")
        try:
            return await exporter.export([reference_record()])
        finally:
            await exporter.aclose()

    result = asyncio.run(main())
    assert result.status is ExportStatus.RETRYABLE and result.http_status is None
    assert SECRET not in result.detail


def test_timeout_is_retryable() -> None:
    fake = FakeLangfuse(delay=1.0)
    result = with_exporter(fake, lambda e: e.export([reference_record()]), timeout=0.2)
    assert result.status is ExportStatus.RETRYABLE and result.http_status is None


def test_big_batches_are_split_and_stop_at_the_first_failure() -> None:
    records = [reference_record(trace_id=f"{i:032x}") for i in range(1, 6)]
    fake = FakeLangfuse()
    assert with_exporter(fake, lambda e: e.export(records), max_request_bytes=1).ok
    assert len(fake.received) == 5  # one record per request: a record never splits
    sent = [s for got in fake.received for s in spans_of(gzip.decompress(got.body))]
    assert sorted(s.span_id for s in sent) == sorted(s.span_id for s in spans_of(encode(*records)))

    failing = FakeLangfuse(statuses=[200, 503])
    result = with_exporter(failing, lambda e: e.export(records), max_request_bytes=1)
    assert result.status is ExportStatus.RETRYABLE and len(failing.received) == 2


def test_a_record_that_cannot_be_encoded_does_not_hold_up_the_batch(caplog: pytest.LogCaptureFixture) -> None:
    circular: dict[str, Any] = {}
    circular["self"] = circular
    poison = reference_record(trace_id="ef" * 16, model_parameters=circular)
    fake = FakeLangfuse()
    with caplog.at_level(logging.ERROR, logger="llm_scope.tracing.exporting"):
        assert with_exporter(fake, lambda e: e.export([poison, reference_record()])).ok
    (got,) = fake.received
    assert {s.trace_id.hex() for s in spans_of(gzip.decompress(got.body))} == {TRACE_HEX}
    assert "ef" * 16 in caplog.text


def test_session_is_reused_across_exports() -> None:
    fake = FakeLangfuse()

    async def twice(exporter: LangfuseExporter) -> bool:
        first = await exporter.export([reference_record()])
        second = await exporter.export([reference_record()])
        return first.ok and second.ok

    assert with_exporter(fake, twice)
    assert len(fake.received) == 2


def test_send_score_posts_json_with_basic_auth() -> None:
    score = {"id": "s-1", "traceId": TRACE_HEX, "name": "helpful", "value": 1, "dataType": "NUMERIC"}
    fake = FakeLangfuse()
    result = with_exporter(fake, lambda e: e.send_score(score))
    assert result.ok
    (got,) = fake.received
    assert got.path == "/api/public/scores"
    assert got.headers["Authorization"] == basic_auth(PUBLIC, SECRET)
    assert got.headers["Content-Type"] == "application/json"
    # Langfuse files a score without an environment under "default", away from its trace.
    assert json.loads(got.body) == {**score, "environment": "production"}


def test_send_score_rejection() -> None:
    fake = FakeLangfuse(statuses=[400], response_body='{"message": "invalid dataType"}')
    result = with_exporter(fake, lambda e: e.send_score({"traceId": TRACE_HEX, "name": "x", "value": "?"}))
    assert result.status is ExportStatus.REJECTED and "invalid dataType" in result.detail


def test_constructor_guards_config_and_repr_hides_the_secret() -> None:
    with pytest.raises(ValueError):
        exporter_for("http://127.0.0.1:1", environment="Prod")
    with pytest.raises(ValueError):
        exporter_for("cloud.langfuse.com")
    assert SECRET not in repr(exporter_for("http://127.0.0.1:1"))
