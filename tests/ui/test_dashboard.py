"""The dashboard end to end: real calls through the gateway, then the page in headless chromium.

Skipped only when /usr/bin/chromium is absent (CI installs Debian's `chromium`). Screenshots go to
tests/ui/artifacts/ (or $LLM_SCOPE_UI_ARTIFACTS).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import upstream_models
from tests.fakes.otlp_receiver import OtlpReceiver, start_otlp_receiver
from tests.fakes.upstream import FakeUpstream
from tests.fakes.wire import fake_reply
from tests.gateway_server import GatewayServer, make_settings, model_config
from tests.ui.browser import (
    AGENT,
    CHROMIUM,
    TOOLS,
    api,
    chat,
    extra_models,
    open_view,
    screenshot,
    watched_page,
)

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)

HOSTILE = 'Hello <b>dashboard</b> <img src=x onerror="window.__xss=1">'
MASTER_KEY = "sk-master-ui-test-0123456789"


@dataclass
class Seeded:
    gw: GatewayServer
    ids: dict[str, str]  # plain, stream, tool, error → trace id

    def trace(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = api(self.gw, f"/api/traces/{self.ids[name]}")
        return found


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with watched_page(browser, 1400, 900) as opened:
        yield opened


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[Seeded]:
    """One gateway with four calls: plain (alice, s1), stream (alice, s1), tool (bob, s2), error (alice, s1)."""
    settings = make_settings(tmp_path_factory.mktemp("ui"))
    models = model_config(upstream_models(upstream) + extra_models(upstream))
    with GatewayServer(settings, model_config=models) as gw:
        calls = {
            "plain": chat(gw, HOSTILE, user="alice", session="s1"),
            "stream": chat(
                gw, "stream me FAKE_CHUNK_DELAY=0.02", model="gpt-big", user="alice", session="s1", stream=True
            ),
            "tool": chat(gw, "weather in Paris?", user="bob", session="s2", tools=TOOLS),
            "error": chat(gw, "fail FAKE_ERROR_500", user="alice", session="s1"),
        }
        assert [r.status_code for r in calls.values()] == [200, 200, 200, 502]
        yield Seeded(gw, {name: r.headers["x-trace-id"] for name, r in calls.items()})


def cell(row: Any, col: str) -> Any:
    return row.locator(f"[data-col='{col}']")


def dataset(elements: Any, key: str) -> list[str]:
    """One data-* value per matched element."""
    values: list[str] = elements.evaluate_all(f"els => els.map(e => e.dataset.{key})")
    return values


def test_calls_list_shows_every_call_with_its_numbers(seeded: Seeded, page: Page) -> None:
    open_view(page, seeded.gw, "calls")
    expect(page.get_by_test_id("call-row")).to_have_count(4)
    expect(page.get_by_test_id("calls-count")).to_have_text("4 calls")
    for name, trace_id in seeded.ids.items():
        t = seeded.trace(name)
        row = page.locator(f"tr[data-trace-id='{trace_id}']")
        expect(cell(row, "user")).to_have_text(t["user_id"])
        expect(cell(row, "session")).to_have_text(t["session_id"])
        expect(cell(row, "client")).to_have_text(AGENT.split("/")[0])  # the tool name; its version is apart
        expect(cell(row, "model")).to_contain_text(t["requested_model"])
        expect(cell(row, "status")).to_have_text(str(t["status_code"]))
        expect(cell(row, "tokens-in")).to_have_attribute("data-value", str(t["input_tokens"]))
        expect(cell(row, "tokens-out")).to_have_attribute("data-value", str(t["output_tokens"]))
        assert float(cell(row, "latency").get_attribute("data-value")) == t["duration_ms"]
        cost = cell(row, "cost").get_attribute("data-value")
        assert (float(cost) if cost else None) == t["cost_total"]
    assert seeded.trace("plain")["cost_total"] > 0 and seeded.trace("stream")["ttft_ms"] is not None
    expect(page.locator(f"tr[data-trace-id='{seeded.ids['error']}']")).to_have_class("error")
    expect(cell(page.locator(f"tr[data-trace-id='{seeded.ids['stream']}']"), "ttft")).not_to_have_text("—")
    screenshot(page, "calls")


def test_calls_filters_by_user_model_and_status(seeded: Seeded, page: Page) -> None:
    open_view(page, seeded.gw, "calls")
    page.locator("#filter-user").fill("bob")
    expect(page.get_by_test_id("call-row")).to_have_count(1)
    expect(page.locator(f"tr[data-trace-id='{seeded.ids['tool']}']")).to_be_visible()
    assert "user=bob" in page.evaluate("location.hash")
    page.get_by_test_id("filter-clear").click()
    expect(page.get_by_test_id("call-row")).to_have_count(4)
    page.locator("#filter-status").select_option("error")
    expect(page.get_by_test_id("call-row")).to_have_count(1)
    expect(page.locator(f"tr[data-trace-id='{seeded.ids['error']}']")).to_be_visible()
    open_view(page, seeded.gw, "calls?model=gpt-big&session=s1")
    expect(page.get_by_test_id("call-row")).to_have_count(1)
    expect(page.locator("#filter-model")).to_have_value("gpt-big")


def test_new_calls_appear_without_a_reload(gateway: GatewayServer, page: Page) -> None:
    chat(gateway, "first", user="carol")
    open_view(page, gateway, "calls")
    expect(page.get_by_test_id("call-row")).to_have_count(1)
    page.evaluate("window.__sameDocument = true")
    trace_id = chat(gateway, "second", user="dave", session="live").headers["x-trace-id"]
    row = page.locator(f"tr[data-trace-id='{trace_id}']")
    expect(row).to_be_visible(timeout=6_000)  # the list polls every 2 s
    expect(cell(row, "user")).to_have_text("dave")
    expect(row).to_have_class("new")
    expect(page.get_by_test_id("call-row")).to_have_count(2)
    assert page.evaluate("window.__sameDocument") is True


def test_detail_shows_tool_call_usage_cost_and_timing(seeded: Seeded, page: Page) -> None:
    t = seeded.trace("tool")
    open_view(page, seeded.gw, "calls")
    page.locator(f"tr[data-trace-id='{t['trace_id']}'] [data-col='model']").click()
    page.wait_for_selector("main#view[data-view='call'][data-ready='1']")
    expect(page.get_by_test_id("detail-trace-id")).to_have_text(t["trace_id"])
    expect(page.get_by_test_id("detail-input")).to_contain_text("weather in Paris?")
    expect(page.get_by_test_id("tool-def")).to_contain_text("get_weather")
    call = page.get_by_test_id("detail-output").get_by_test_id("tool-call")
    expect(call.get_by_test_id("tool-name")).to_have_text("get_weather")
    assert call.get_by_test_id("tool-args").inner_text().strip() == '{\n  "city": "Paris"\n}'  # pretty-printed
    for testid, value in [
        ("cost-input", t["cost_input"] - t["cost_cache_read"] - t["cost_cache_write"]),  # fresh input
        ("cost-cache-read", t["cost_cache_read"]),
        ("cost-output", t["cost_output"] - t["cost_reasoning"]),
        ("cost-total", t["cost_total"]),
        ("usage-input", t["usage"]["input"]),
        ("usage-output", t["usage"]["output"]),
        ("usage-cache-read", t["usage"]["cache_read"]),
        ("usage-total", t["usage"]["total"]),
        ("total", t["duration_ms"]),
        ("upstream", t["upstream_ms"]),
    ]:
        assert float(page.get_by_test_id(testid).get_attribute("data-value")) == pytest.approx(value), testid
    expect(page.get_by_test_id("cost-total")).to_contain_text("$0.00000")
    overhead = float(page.get_by_test_id("overhead").get_attribute("data-value"))
    assert overhead == pytest.approx(t["duration_ms"] - t["upstream_ms"], abs=1e-9)
    expect(page.locator("#langfuse-link")).to_have_count(0)  # Langfuse is not configured here
    screenshot(page, "detail-tool-call")


def test_detail_renders_prompts_as_text_never_as_html(seeded: Seeded, page: Page) -> None:
    t = seeded.trace("plain")
    open_view(page, seeded.gw, f"call/{t['trace_id']}")
    messages = page.get_by_test_id("detail-input").get_by_test_id("message")
    expect(messages).to_have_count(1)
    expect(messages).to_have_attribute("data-role", "user")
    expect(messages).to_contain_text(HOSTILE)
    expect(page.get_by_test_id("detail-output")).to_contain_text(fake_reply(HOSTILE))
    assert page.locator("main img, main b").count() == 0
    assert page.evaluate("window.__xss") is None
    expect(page.get_by_test_id("detail-session")).to_have_text("s1")


def test_detail_shows_the_error_and_the_stream_timing(seeded: Seeded, page: Page) -> None:
    error = seeded.trace("error")
    open_view(page, seeded.gw, f"call/{error['trace_id']}")
    expect(page.get_by_test_id("detail-error")).to_contain_text("502")
    expect(page.get_by_test_id("detail-error")).to_contain_text(error["error_message"])
    stream = seeded.trace("stream")
    open_view(page, seeded.gw, f"call/{stream['trace_id']}")
    assert float(page.get_by_test_id("ttft").get_attribute("data-value")) == pytest.approx(stream["ttft_ms"])
    expect(page.get_by_test_id("detail-output")).to_contain_text(fake_reply("stream me FAKE_CHUNK_DELAY=0.02"))


def test_sessions_list_and_timeline_with_running_cost(seeded: Seeded, page: Page) -> None:
    sessions = {s["session_id"]: s for s in api(seeded.gw, "/api/sessions")["data"]}
    open_view(page, seeded.gw, "sessions")
    expect(page.get_by_test_id("session-row")).to_have_count(2)
    for sid, calls in (("s1", 3), ("s2", 1)):
        row = page.locator(f"tr[data-session-id='{sid}']")
        expect(cell(row, "calls")).to_have_attribute("data-value", str(calls))
        assert float(cell(row, "cost").get_attribute("data-value")) == pytest.approx(sessions[sid]["cost_total"])
    expect(cell(page.locator("tr[data-session-id='s1']"), "errors")).to_have_text("1")
    screenshot(page, "sessions")

    page.locator("tr[data-session-id='s1'] a").click()
    page.wait_for_selector("main#view[data-view='session'][data-ready='1']")
    rows = page.get_by_test_id("session-call")
    expect(rows).to_have_count(3)
    in_order = [seeded.ids["plain"], seeded.ids["stream"], seeded.ids["error"]]
    assert [rows.nth(i).get_attribute("data-trace-id") for i in range(3)] == in_order
    costs = [seeded.trace(n)["cost_total"] or 0.0 for n in ("plain", "stream", "error")]
    running = [float(cell(rows.nth(i), "running-cost").get_attribute("data-value")) for i in range(3)]
    assert running == pytest.approx([costs[0], costs[0] + costs[1], sum(costs)])
    expect(page.get_by_test_id("session-calls-count")).to_have_attribute("data-value", "3")
    expect(page.locator("svg#chart-session-cost circle")).to_have_count(4)  # the origin and three calls
    screenshot(page, "session")


def test_usage_charts_render_models_users_and_totals(seeded: Seeded, page: Page) -> None:
    usage = api(seeded.gw, "/api/usage")
    open_view(page, seeded.gw, "usage")
    expect(page.get_by_test_id("usage-calls")).to_have_attribute("data-value", "4")
    by_model = {r["model"]: r["cost_total"] for r in usage["by_model"]}
    assert set(by_model) == {"gpt-4o-mini", "gpt-4o"}
    bars = page.locator("svg#chart-cost-by-model [data-testid='bar']")
    expect(bars).to_have_count(2)
    shown = dict(zip(dataset(bars, "label"), map(float, dataset(bars, "value")), strict=True))
    assert shown == pytest.approx(by_model)
    expect(page.locator("svg#chart-cost-by-model [data-testid='bar-label']")).to_have_text(["gpt-4o", "gpt-4o-mini"])
    assert sorted(dataset(page.locator("svg#chart-cost-by-user [data-testid='bar']"), "label")) == ["alice", "bob"]

    segments = page.locator("svg#chart-cost-model-day rect.seg")  # a segment per day and model with a cost
    expect(segments).to_have_count(sum(1 for r in usage["by_day_model"] if r["cost_total"]))
    assert sum(float(v) for v in dataset(segments, "value")) == pytest.approx(usage["total"]["cost_total"])
    assert set(dataset(segments, "series")) == set(by_model)
    tokens = dataset(page.locator("svg#chart-tokens-model-day rect.seg"), "value")
    assert sum(int(v) for v in tokens) == usage["total"]["total_tokens"]
    assert set(dataset(page.locator("svg#chart-cost-user-day rect.seg"), "series")) == {"alice", "bob"}
    stats = api(seeded.gw, "/api/stats", bucket="hour")["latency"]  # a day of data: hourly percentiles
    expect(page.locator("svg#chart-latency circle")).to_have_count(2 * len(stats))  # p50 and p95 per hour
    expect(page.locator("svg#chart-ttft circle")).to_have_count(2 * sum(1 for r in stats if "ttft_p50_ms" in r))
    screenshot(page, "usage")


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    r = start_otlp_receiver(credentials=("pk-lf-ui", "sk-lf-ui"))
    yield r
    r.stop()


def test_master_key_guards_the_page_and_a_key_link_signs_in(
    tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver, page: Page
) -> None:
    settings = make_settings(
        tmp_path,
        master_key=MASTER_KEY,
        langfuse_public_key="pk-lf-ui",
        langfuse_secret_key="sk-lf-ui",
        langfuse_host=receiver.url,
    )
    with GatewayServer(settings, model_config=model_config(upstream_models(upstream))) as gw:
        trace_id = chat(gw, "keyed", user="erin", key=MASTER_KEY).headers["x-trace-id"]
        with gw.client() as client:
            for path in ("/ui", "/ui/assets/app.js", "/api/traces", "/api/ui-config", "/ui?key=wrong"):
                assert client.get(path).status_code == 401, path
        for url in (f"{gw.url}/ui", f"{gw.url}/ui?key=nope"):
            response = page.goto(url)
            assert response is not None and response.status == 401, url

        page.goto(f"{gw.url}/ui?key={MASTER_KEY}#/calls")
        page.wait_for_selector("main#view[data-view='calls'][data-ready='1']")
        assert page.url == f"{gw.url}/ui#/calls"  # the key is gone from the address bar and history
        expect(page.locator(f"tr[data-trace-id='{trace_id}']")).to_be_visible()
        (cookie,) = page.context.cookies()
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and MASTER_KEY not in cookie["value"]
        assert page.evaluate("document.cookie") == ""
        # The cookie is good for reading, not for spending: a call through the gateway still needs the key.
        status = page.evaluate(
            "fetch('/v1/chat/completions', {method: 'POST', headers: {'content-type': 'application/json'},"
            " body: JSON.stringify({model: 'gpt-fake', messages: [{role: 'user', content: 'x'}]})}).then(r => r.status)"
        )
        assert status == 401

        open_view(page, gw, f"call/{trace_id}")
        link = page.locator("#langfuse-link")
        expect(link).to_have_attribute("href", f"{receiver.url}/trace/{trace_id}")
        config = api(gw, "/api/ui-config", key=MASTER_KEY)
        assert config["langfuse_url"] == receiver.url and config["master_key"] is True
