"""What the dashboard's tables read, end to end: names from rejected calls grouped as one "(rejected)" model,
the calls behind it listed with `status=rejected`, cost by bucket adding up to what was billed, and every call
that matches as CSV."""

from __future__ import annotations

import csv
import io

import pytest

from tests.gateway_server import GatewayServer
from tests.http.test_clients import CLAUDE_CODE

BUCKETS = ("cost_fresh_input", "cost_cache_read", "cost_cache_write", "cost_plain_output", "cost_reasoning")


def test_rejected_names_grouped_and_cost_by_bucket(gateway: GatewayServer) -> None:
    with gateway.client() as http:
        for typo in ("gtp-fake", "gpt-fak", "gtp-fake"):
            body = {"model": typo, "messages": [{"role": "user", "content": "hi"}]}
            assert http.post("/v1/chat/completions", json=body).status_code == 404
        body = {"model": "claude-fake", "max_tokens": 50, "messages": [{"role": "user", "content": "plan"}]}
        assert http.post("/v1/messages", headers=CLAUDE_CODE, json=body).status_code == 200
        upstream_refused = {"model": "gpt-fake", "messages": [{"role": "user", "content": "FAKE_ERROR_400"}]}
        assert http.post("/v1/chat/completions", json=upstream_refused).status_code == 400

        by_model = {r["model"]: r for r in http.get("/api/usage", params={"group_by": "model"}).json()["data"]}
        assert "gtp-fake" not in by_model and "gpt-fak" not in by_model
        assert by_model["(rejected)"]["calls"] == 3 and by_model["(rejected)"]["cost_total"] is None
        assert by_model["gpt-4o-mini"]["errors"] == 1  # a deployment the upstream refused stays itself
        whole = http.get("/api/usage").json()
        assert whole["rejected_name"] == "(rejected)"
        assert {r["model"] for r in whole["by_model"]} == set(by_model)
        assert "gtp-fake" not in {r["model"] for r in whole["by_day_model"]}

        rejected = http.get("/api/traces", params={"status": "rejected"}).json()
        assert sorted(r["requested_model"] for r in rejected["data"]) == ["gpt-fak", "gtp-fake", "gtp-fake"]
        assert http.get("/api/traces", params={"status": "refused"}).status_code == 400

        (claude,) = [r for name, r in by_model.items() if name.startswith("claude")]
        assert claude["cost_cache_read"] > 0 and claude["cost_unsplit_calls"] == 0
        assert sum(claude[b] for b in BUCKETS) == pytest.approx(claude["cost_total"])

        calls = list(csv.DictReader(io.StringIO(http.get("/api/traces", params={"format": "csv"}).text)))
        assert len(calls) == 5 and {"client", "route", "error_type", *BUCKETS[1:2]} <= set(calls[0])
        (row,) = [r for r in calls if r["cost_total"]]
        assert float(row["cost_cache_read"]) > 0 and row["session_id"]
        assert {r["cost_cache_read"] for r in calls if not r["cost_total"]} == {""}  # unknown, not 0
        assert http.get("/api/traces", params={"format": "xml"}).status_code == 400
