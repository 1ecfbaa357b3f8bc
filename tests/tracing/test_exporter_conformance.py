"""The Exporter conformance suite: every exporter (Langfuse, OpenTelemetry GenAI) passes the same tests
against a real OTLP receiver on loopback: batching, retry, outage, restart and idempotence, no secret in
what it reports. A new exporter is done when it passes them."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from llm_scope.tracing.exporting import Exporter, ExportResult, ExportStatus
from llm_scope.tracing.genai import GenAIExporter
from llm_scope.tracing.langfuse import LangfuseExporter
from llm_scope.types import CallRecord
from tests.fakes.otlp_receiver import TRACES_PATH, OtlpReceiver, start_otlp_receiver

from .langfuse_reference import reference_record

SECRET = "sk-conformance-secret-0001"


def langfuse(receiver: OtlpReceiver, **kwargs: Any) -> Exporter:
    return LangfuseExporter(
        host=receiver.url, public_key="pk-conformance", secret_key=SECRET, environment="test", release="", **kwargs
    )


def otel(receiver: OtlpReceiver, **kwargs: Any) -> Exporter:
    return GenAIExporter(
        url=receiver.url + TRACES_PATH,
        headers={"authorization": f"Bearer {SECRET}"},
        service_name="conformance",
        version="0.9.0",
        content=True,
        **kwargs,
    )


EXPORTERS: dict[str, Callable[..., Exporter]] = {"langfuse": langfuse, "otel": otel}


@pytest.fixture(params=sorted(EXPORTERS))
def make(request: pytest.FixtureRequest) -> Callable[..., Exporter]:
    return EXPORTERS[request.param]


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    r = start_otlp_receiver()
    yield r
    if r.running:
        r.stop()


def records(n: int, *, start: int = 1, content: str = "hi") -> list[CallRecord]:
    return [
        reference_record(trace_id=f"{i:032x}", input=[{"role": "user", "content": content}])
        for i in range(start, start + n)
    ]


def run(exporter: Exporter, batch: list[CallRecord]) -> ExportResult:
    async def main() -> ExportResult:
        try:
            return await exporter.export(batch)
        finally:
            await exporter.aclose()

    return asyncio.run(main())


def delivered(receiver: OtlpReceiver) -> Counter[str]:
    return Counter(span["trace_id"] for span in receiver.spans())


def test_a_batch_arrives_whole(make: Callable[..., Exporter], receiver: OtlpReceiver) -> None:
    batch = records(25)
    assert run(make(receiver), batch).ok
    assert set(delivered(receiver)) == {r.trace_id for r in batch}
    assert all(req.gzipped for req in receiver.requests)


def test_big_batches_are_split_below_the_request_limit(make: Callable[..., Exporter], receiver: OtlpReceiver) -> None:
    batch = records(12, content="x" * 3_000)
    assert run(make(receiver, max_request_bytes=10_000), batch).ok
    assert len(receiver.requests) > 3
    assert set(delivered(receiver)) == {r.trace_id for r in batch}


@pytest.mark.parametrize(("mode", "status"), [("503", ExportStatus.RETRYABLE), ("500", ExportStatus.RETRYABLE)])
def test_server_errors_are_retryable(
    make: Callable[..., Exporter], receiver: OtlpReceiver, mode: str, status: ExportStatus
) -> None:
    receiver.set_mode(mode)
    result = run(make(receiver), records(3))
    assert result.status is status and result.http_status == int(mode)
    assert SECRET not in result.detail


def test_429_carries_retry_after(make: Callable[..., Exporter], receiver: OtlpReceiver) -> None:
    receiver.set_mode("429")
    result = run(make(receiver), records(1))
    assert result.status is ExportStatus.RETRYABLE and result.retry_after == 1.0


def test_an_outage_is_retryable_and_names_no_secret(make: Callable[..., Exporter], receiver: OtlpReceiver) -> None:
    receiver.stop()
    result = run(make(receiver, timeout=2.0), records(2))
    assert result.status is ExportStatus.RETRYABLE and result.http_status is None
    assert SECRET not in result.detail


def test_resending_after_a_restart_duplicates_nothing(make: Callable[..., Exporter], receiver: OtlpReceiver) -> None:
    batch = records(5)
    assert run(make(receiver), batch).ok
    # A new exporter (a restarted helper) sends the same records again, as the outbox does after a crash.
    assert run(make(receiver), batch).ok
    ids = Counter(span["span_id"] for span in receiver.spans())
    assert len(ids) == len(batch) and set(ids.values()) == {2}  # the same span ids: the backend dedupes


def test_nothing_to_send_sends_nothing(make: Callable[..., Exporter], receiver: OtlpReceiver) -> None:
    assert run(make(receiver), []).ok
    assert receiver.requests == []


def test_an_unencodable_record_does_not_hold_up_the_batch(
    make: Callable[..., Exporter], receiver: OtlpReceiver
) -> None:
    poison = reference_record(trace_id="ee" * 16, start_time=1e12)  # nanoseconds past uint64
    good = records(2)
    assert run(make(receiver), [good[0], poison, good[1]]).ok
    assert set(delivered(receiver)) == {r.trace_id for r in good}
