"""The dashboard's HTTP side without a browser: assets and their caching, the key cookie, and /api/stats."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llm_scope.http.auth import UI_COOKIE, ui_token
from llm_scope.tracing import stats
from llm_scope.tracing.queries import TraceFilter
from llm_scope.tracing.store import Store
from llm_scope.types import CallRecord, Usage
from tests.conftest import upstream_models
from tests.fakes.upstream import FakeUpstream
from tests.gateway_server import GatewayServer, make_settings, model_config
from tests.ui.browser import chat

KEY = "sk-master-routes-0123456789"


def test_page_links_versioned_assets_served_with_their_types_and_cache_headers(gateway: GatewayServer) -> None:
    with gateway.client() as client:
        page = client.get("/ui")
        assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-cache"
        links = dict(re.findall(r'"ui/assets/([\w.]+)\?v=(\w+)"', page.text))
        assert set(links) >= {"app.js", "style.css", "favicon.svg"}
        types = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
        for name, content_type in types.items():
            versioned = client.get(f"/ui/assets/{name}", params={"v": links[name]})
            assert versioned.headers["content-type"] == content_type
            assert versioned.headers["cache-control"] == "public, max-age=31536000, immutable"
            plain = client.get(f"/ui/assets/{name}")
            assert plain.headers["cache-control"] == "no-cache" and plain.content == versioned.content
            again = client.get(f"/ui/assets/{name}", headers={"if-none-match": plain.headers["etag"]})
            assert again.status_code == 304 and again.content == b""
        assert client.get("/ui/assets/charts.js").headers["content-type"].startswith("text/javascript")
        assert client.get("/ui/assets/favicon.svg").headers["content-type"] == "image/svg+xml"
        for missing in ("nope.js", "../http/ui.py", "index.html", "%2e%2e/settings.py"):
            assert client.get(f"/ui/assets/{missing}").status_code == 404, missing


def test_ui_config_without_langfuse(gateway: GatewayServer) -> None:
    with gateway.client() as client:
        config = client.get("/api/ui-config").json()
    assert config["langfuse_url"] is None and config["master_key"] is False and config["version"]


def test_key_link_sets_a_read_only_cookie(tmp_path: Path, upstream: FakeUpstream) -> None:
    settings = make_settings(tmp_path, master_key=KEY)
    with GatewayServer(settings, model_config=model_config(upstream_models(upstream))) as gw, gw.client() as client:
        assert client.get("/ui").status_code == 401
        assert "/ui?key=" in client.get("/ui").json()["error"]["message"]
        assert client.get("/ui", params={"key": "wrong"}).status_code == 401
        assert client.get("/api/traces", params={"key": KEY}).status_code == 401  # ?key= works on /ui only
        signed_in = client.get("/ui", params={"key": KEY})
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/ui"
        set_cookie = signed_in.headers["set-cookie"]
        assert KEY not in set_cookie and f"{UI_COOKIE}={ui_token(KEY)}" in set_cookie
        assert "httponly" in set_cookie.lower() and "samesite=strict" in set_cookie.lower()
        client.cookies.clear()  # from here on, send exactly the cookie each request names
        cookie = {"cookie": f"other=1; {UI_COOKIE}={ui_token(KEY)}"}
        for path in ("/ui", "/ui/assets/app.js", "/api/traces", "/api/usage", "/api/stats"):
            assert client.get(path, headers=cookie).status_code == 200, path
        body = {"model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}]}
        assert client.post("/v1/chat/completions", headers=cookie, json=body).status_code == 401
        forged = {"cookie": f"{UI_COOKIE}={ui_token('another-key')}"}
        assert client.get("/api/traces", headers=forged).status_code == 401


def test_stats_route_validates_and_answers(gateway: GatewayServer) -> None:
    chat(gateway, "one", user="ann")
    chat(gateway, "two", user="ann", stream=True)
    with gateway.client() as client:
        assert client.get("/api/stats", params={"bucket": "week"}).status_code == 400
        assert client.get("/api/stats", params={"since": "yesterday"}).status_code == 400
        out = client.get("/api/stats", params={"bucket": "hour"}).json()
    assert out["bucket"] == "hour" and sum(r["calls"] for r in out["latency"]) == 2
    assert out["by_day_user"][0]["user"] == "ann" and out["by_day_user"][0]["calls"] == 2


def _record(i: int, start: float, duration_ms: float, **kwargs: object) -> CallRecord:
    return CallRecord(
        trace_id=f"{i:032x}",
        route="chat_completion",
        start_time=start,
        end_time=start + duration_ms / 1000,
        usage=Usage(input=10, output=5, total=15),
        **kwargs,  # type: ignore[arg-type]
    )


def test_latency_percentiles_are_nearest_rank_per_bucket_over_successful_calls(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    day1, day2 = 1_700_000_000.0, 1_700_000_000.0 + 86400
    records = [_record(i, day1 + i, float(i), user_id="u1") for i in range(1, 11)]  # 1..10 ms
    records.append(_record(11, day1 + 20, 99_999.0, status_code=500, error_type="upstream_error"))
    records.append(_record(12, day2, 7.0, completion_start_time=day2 + 0.002, user_id="u2"))
    store.write(records, outbox=False, max_outbox=10)
    rows = stats.latency(store, TraceFilter())
    assert rows == [
        {"bucket": "2023-11-14", "calls": 10, "duration_p50_ms": 5.0, "duration_p95_ms": 10.0},
        {
            "bucket": "2023-11-15",
            "calls": 1,
            "duration_p50_ms": 7.0,
            "duration_p95_ms": 7.0,
            "ttft_p50_ms": pytest.approx(2.0),
            "ttft_p95_ms": pytest.approx(2.0),
        },
    ]
    assert stats.latency(store, TraceFilter(), "hour")[0]["bucket"] == "2023-11-14T22:00"
    assert stats.latency(store, TraceFilter(user="u2")) == [rows[1]]
    by_user = stats.usage_by_day_user(store, TraceFilter())
    assert [(r["day"], r["user"], r["calls"]) for r in by_user] == [
        ("2023-11-14", None, 1),
        ("2023-11-14", "u1", 10),
        ("2023-11-15", "u2", 1),
    ]
    with pytest.raises(ValueError):
        stats.latency(store, TraceFilter(), "week")
    store.close()
