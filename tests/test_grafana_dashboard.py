"""deploy/grafana-dashboard.json only queries series the gateway really exposes.

The names come from a real scrape: a gateway runs in-process, real calls go through it (stream, non-stream,
priced, unknown model, unreachable upstream) so every family has samples, and /metrics on the main port is
parsed with prometheus-client's own parser. Names are compared on samples, because a histogram family is
named without its `_bucket`/`_sum`/`_count` suffixes and a counter family without `_total`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import upstream_models
from tests.fakes.upstream import FakeUpstream
from tests.gateway_server import GatewayServer, make_settings, model_config

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana-dashboard.json"
METRIC_NAME = re.compile(r"llm_scope_[a-z_]+")
BY_CLAUSE = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*"')
# Labels Prometheus adds at scrape time, plus the bucket bound histogram_quantile aggregates on.
SCRAPE_LABELS = {"job", "instance", "le"}
# Every family the dashboard is about; the scrape below must produce samples for each of them.
EXPECTED_SAMPLES = {
    "llm_scope_requests_total",
    "llm_scope_request_duration_seconds_bucket",
    "llm_scope_upstream_duration_seconds_bucket",
    "llm_scope_overhead_seconds_bucket",
    "llm_scope_time_to_first_token_seconds_bucket",
    "llm_scope_output_tokens_per_second_bucket",
    "llm_scope_tokens_total",
    "llm_scope_cost_usd_total",
    "llm_scope_in_flight_requests",
    "llm_scope_in_flight_streams",
    "llm_scope_upstream_failures_total",
    "llm_scope_trace_queue_depth",
    "llm_scope_trace_outbox_backlog",
    "llm_scope_trace_exported_total",
    "llm_scope_trace_export_failures_total",
    "llm_scope_trace_records_lost_total",
}


@pytest.fixture(scope="module")
def exposition(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[tuple[set[str], set[str]]]:
    """(sample names, label names) from a real scrape after calls that make every series exist."""
    settings = make_settings(tmp_path_factory.mktemp("dashboard"))
    config = model_config(upstream_models(upstream))
    with GatewayServer(settings, model_config=config) as gw, gw.client() as client:
        calls: list[tuple[str, bool]] = [
            ("mock-gpt", False),
            ("mock-gpt", True),
            ("gpt-fake", True),  # priced upstream model: cost
            ("no-such-model", False),  # 404 model_not_found
            ("dead-fake", False),  # unreachable upstream: upstream failure
        ]
        for model, stream in calls:
            client.post(
                "/v1/chat/completions",
                json={"model": model, "stream": stream, "messages": [{"role": "user", "content": "dashboard"}]},
            )
        client.get("/api/traces")  # waits for the trace writer, which prices the calls
        text = client.get("/metrics").text
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    yield {s.name for s in samples}, {label for s in samples for label in s.labels}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text())
    assert isinstance(loaded, dict)
    return loaded


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows keep their panels inside


def expressions(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(dashboard) for t in p.get("targets", []) if t.get("expr")]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if variable.get("type") == "query":
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def test_dashboard_is_an_importable_grafana_dashboard(dashboard: dict[str, Any]) -> None:
    assert dashboard["panels"], "no panels"
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard["title"] and dashboard["uid"]
    assert any(i["name"] == "DS_PROMETHEUS" and i["pluginId"] == "prometheus" for i in dashboard["__inputs"])
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(dashboard):
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["expr"].strip(), f"empty query in {panel['title']!r}"


def test_dashboard_has_the_panels_operators_need(dashboard: dict[str, Any]) -> None:
    text = "\n".join(expressions(dashboard))
    for needle in (
        "histogram_quantile(0.5, sum by (le) (rate(llm_scope_request_duration_seconds_bucket",
        "histogram_quantile(0.95, sum by (le) (rate(llm_scope_request_duration_seconds_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(llm_scope_request_duration_seconds_bucket",
        "1000 * histogram_quantile(0.99, sum by (le) (rate(llm_scope_overhead_seconds_bucket",
        "llm_scope_time_to_first_token_seconds_bucket",
        "increase(llm_scope_cost_usd_total",
        "sum by (direction) (rate(llm_scope_tokens_total",
        "llm_scope_upstream_failures_total",
        "llm_scope_trace_records_lost_total",
    ):
        assert needle in text, needle


def test_every_queried_metric_exists_in_the_real_exposition(
    dashboard: dict[str, Any], exposition: tuple[set[str], set[str]]
) -> None:
    sample_names, _ = exposition
    assert sample_names >= EXPECTED_SAMPLES, f"scrape lacks {sorted(EXPECTED_SAMPLES - sample_names)}"
    referenced = {name for expr in expressions(dashboard) for name in METRIC_NAME.findall(expr)}
    assert referenced, "no llm_scope metric referenced"
    unknown = referenced - sample_names
    assert not unknown, f"dashboard queries metrics the gateway does not expose: {sorted(unknown)}"


def test_every_label_used_exists_in_the_real_exposition(
    dashboard: dict[str, Any], exposition: tuple[set[str], set[str]]
) -> None:
    _, label_names = exposition
    used: set[str] = set()
    for expr in expressions(dashboard):
        used.update(label.strip() for clause in BY_CLAUSE.findall(expr) for label in clause.split(","))
        used.update(MATCHER.findall(expr))
    used.discard("")
    assert {"requested_model", "model", "status_code", "error_type", "direction", "deployment"} <= used
    unknown = used - label_names - SCRAPE_LABELS
    assert not unknown, f"dashboard uses labels the gateway does not expose: {sorted(unknown)}"
