"""Metrics scraped over HTTP after real calls, parsed with prometheus-client's own parser."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from llm_scope.app import METRICS_FOLD_SECONDS
from tests.conftest import upstream_models
from tests.fakes.serving import free_port
from tests.fakes.upstream import FakeUpstream
from tests.fakes.wire import FAKE_PROMPT_TOKENS
from tests.gateway_server import GatewayServer, make_settings, model_config, spawn_gateway

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    text = httpx.get(url, timeout=10).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def test_calls_move_the_right_metrics_by_the_right_amounts(tmp_path: Path, upstream: FakeUpstream) -> None:
    port = free_port()
    settings = make_settings(tmp_path, metrics_port=port)
    with GatewayServer(settings, model_config=model_config(upstream_models(upstream))) as gw, gw.client() as client:
        before = scrape(f"http://127.0.0.1:{port}/metrics")
        for stream in (False, True, True):
            r = client.post(
                "/v1/chat/completions",
                json={"model": "gpt-fake", "stream": stream, "messages": [{"role": "user", "content": "count me"}]},
            )
            assert r.status_code == 200
        client.post("/v1/chat/completions", json={"model": "nope", "messages": [{"role": "user", "content": "x"}]})
        client.post("/v1/chat/completions", json={"model": "dead-fake", "messages": [{"role": "user", "content": "x"}]})
        client.get("/api/traces")  # waits for the trace writer, which prices the calls
        after = scrape(f"http://127.0.0.1:{port}/metrics")
        main_port = scrape(gw.url + "/metrics")

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    ok = {"route": "chat_completion", "requested_model": "gpt-fake", "model": "gpt-4o-mini", "provider": "openai"}
    assert delta("llm_scope_requests_total", status_code="200", **ok) == 3
    assert delta("llm_scope_requests_total", status_code="404", error_type="model_not_found") == 1
    assert delta("llm_scope_requests_total", status_code="502") == 1
    # Every attempt counts: the first try and the default two retries.
    assert delta("llm_scope_upstream_failures_total", deployment="dead-fake", kind="error") == 3
    assert delta("llm_scope_tokens_total", direction="input", model="gpt-4o-mini") == 3 * FAKE_PROMPT_TOKENS
    assert delta("llm_scope_tokens_total", direction="cached", model="gpt-4o-mini") == 3 * 2
    assert delta("llm_scope_request_duration_seconds_count", model="gpt-4o-mini") == 4  # 3 answered + unreachable
    assert delta("llm_scope_upstream_duration_seconds_count", model="gpt-4o-mini") == 3  # only answered ones
    assert delta("llm_scope_overhead_seconds_count", route="chat_completion") == 3
    assert delta("llm_scope_time_to_first_token_seconds_count", model="gpt-4o-mini") == 2  # streams only
    assert delta("llm_scope_cost_usd_total", model="gpt-4o-mini") > 0
    assert total(after, "llm_scope_in_flight_requests") == 0 and total(after, "llm_scope_in_flight_streams") == 0
    assert total(after, "llm_scope_trace_records_lost_total") == 0
    assert total(main_port, "llm_scope_requests_total", status_code="200") == 3
    # Scrapes are not requests: /metrics itself is not counted.
    assert not any(dict(ls).get("route") == "/metrics" for (_, ls) in after)


def test_two_workers_add_up(tmp_path: Path, upstream: FakeUpstream) -> None:
    metrics_port = free_port()
    proc, url = spawn_gateway(
        tmp_path, upstream_models(upstream), env={"METRICS_PORT": str(metrics_port)}, args=("--workers", "2")
    )
    try:
        n = 40
        for _ in range(n):  # a new connection each time, so the kernel spreads them over both workers
            r = httpx.post(
                url + "/v1/chat/completions",
                timeout=10,
                json={"model": "mock-gpt", "messages": [{"role": "user", "content": "w"}]},
            )
            assert r.status_code == 200
        # Each worker folds its calls into the shared files every METRICS_FOLD_SECONDS (and before a scrape it
        # serves itself): the parent's merged view may lag by that much, never by a call more.
        deadline = time.monotonic() + 5
        while True:
            samples = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
            counted = total(samples, "llm_scope_requests_total", requested_model="mock-gpt", status_code="200")
            if counted >= n or time.monotonic() > deadline:
                break
            time.sleep(METRICS_FOLD_SECONDS / 2)
        assert counted == n
        assert total(samples, "llm_scope_request_duration_seconds_count", model="mock-gpt") == n
        files = list((tmp_path / "data" / "prometheus-multiproc").glob("counter_*.db"))
        assert len({f.stem.split("_")[-1] for f in files}) == 2  # both workers wrote counts that were merged
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def _samples(text: str, prefix: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith(prefix) and not s.name.endswith("_created")
    }


def test_folded_calls_read_exactly_as_observed_ones() -> None:
    """Calls are folded into the histograms in batches: bucket counts and sums must be what prometheus_client's
    own observe() makes of the same values, bucket edges (le is inclusive), zero, the top bucket and past it."""
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from llm_scope.metrics import LATENCY_BUCKETS, Metrics
    from llm_scope.types import CallRecord, Usage

    durations = [0.0, 0.001, 0.0010001, 0.005, 0.3, 1.0, 2.5, 600.0, 600.5, 7200.0, 0.25, 0.25]
    metrics = Metrics()
    for i, duration in enumerate(durations):
        metrics.observe_call(
            CallRecord(
                trace_id=f"{i:032x}",
                route="chat_completion",
                start_time=100.0,
                end_time=100.0 + duration,
                requested_model="m",
                resolved_model="m",
                provider="openai",
                upstream_latency=duration,
                usage=Usage(input=3, output=2, total=5),
            )
        )
    reference = CollectorRegistry()
    observed = Histogram(
        "llm_scope_request_duration_seconds",
        "x",
        ["route", "model", "provider"],
        buckets=LATENCY_BUCKETS,
        registry=reference,
    ).labels("chat_completion", "m", "openai")
    for duration in durations:
        observed.observe(100.0 + duration - 100.0)  # the same float the record's duration works out to
    ours = _samples(metrics.render().decode(), "llm_scope_request_duration_seconds")
    theirs = _samples(generate_latest(reference).decode(), "llm_scope_request_duration_seconds")
    assert ours == theirs and ours
    folded = _samples(metrics.render().decode(), "llm_scope_")
    assert folded[("llm_scope_requests_total", frozenset({
        ("route", "chat_completion"), ("requested_model", "m"), ("model", "m"), ("provider", "openai"),
        ("status_code", "200"), ("error_type", ""),
    }))] == len(durations)  # fmt: skip
    assert total(folded, "llm_scope_tokens_total", direction="input") == 3 * len(durations)
    assert total(folded, "llm_scope_upstream_duration_seconds_count") == len(durations)
