"""What a team lead expects of the dashboard, in headless chromium: sortable tables and a CSV of each, a
date-range picker, whole session ids, route and error columns, rejected calls' names grouped as one "(rejected)"
row (and found again in the call list), cost by bucket, and long prompts folded until asked for."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import upstream_models
from tests.fakes.upstream import FakeUpstream
from tests.gateway_server import GatewayServer, make_settings, model_config
from tests.http.test_clients import CLAUDE_CODE
from tests.ui.browser import CHROMIUM, TOOLS, api, chat, open_view, screenshot, watched_page

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)

SESSION = "3f1c9a2e-7b44-4d0f-9e6a-1c2b3d4e5f60"
TYPOS = ("gtp-fake", "gpt-fak")
SYSTEM = "You are a careful coding agent.\n" + "Rule: keep modules small and named by what they do.\n" * 400
FILE = "def handler(request):\n    return respond(request)\n" * 70  # ~3.5 KB a message


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[GatewayServer]:
    """alice (a session with a long id), a Claude Code call (cache reads), two rejected typos, a 150 KB
    conversation and an upstream refusal."""
    settings = make_settings(Path(tmp_path_factory.mktemp("polish")), max_body_bytes=4 * 1024 * 1024)
    with GatewayServer(settings, model_config=model_config(upstream_models(upstream))) as server:
        assert chat(server, "hello", user="alice", session=SESSION).status_code == 200
        assert chat(server, "more please", user="alice", session=SESSION, tools=TOOLS).status_code == 200
        for typo in TYPOS:
            assert chat(server, "hi", model=typo, user="bob").status_code == 404
        messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
        for turn in range(40):
            messages.append({"role": "user" if turn % 2 == 0 else "assistant", "content": f"turn {turn}\n{FILE}"})
        messages.append({"role": "user", "content": "the last question"})
        with server.client() as http:
            long = http.post("/v1/chat/completions", json={"model": "gpt-fake", "messages": messages})
            assert long.status_code == 200
            body = {"model": "claude-fake", "max_tokens": 50, "messages": [{"role": "user", "content": "plan"}]}
            assert http.post("/v1/messages", headers=CLAUDE_CODE, json=body).status_code == 200
        assert chat(server, "FAKE_ERROR_400", user="carol").status_code == 400
        server.long_trace_id = long.headers["x-trace-id"]  # type: ignore[attr-defined]
        yield server


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with watched_page(browser, 1500, 900) as opened:
        yield opened


def kb(text: str) -> str:
    return f"{len(text.encode()) / 1024:.1f} KB"


def column(page: Page, col: str) -> list[str]:
    return [c.get_attribute("data-value") or "" for c in page.locator(f"#calls-body [data-col='{col}']").all()]


def test_calls_show_route_error_whole_session_ids_and_rejected_names(gw: GatewayServer, page: Page) -> None:
    open_view(page, gw, "calls")
    expect(page.get_by_test_id("call-row")).to_have_count(api(gw, "/api/traces")["total"])
    row = page.locator("tr[data-trace-id]", has=page.locator("[data-col='session']", has_text=SESSION)).first
    expect(row.locator("[data-col='session']")).to_have_text(SESSION)  # whole, not cut
    expect(row.locator("[data-col='route']")).to_have_text("chat_completion")
    expect(row.locator("[data-col='error']")).to_have_text("—")
    refused = page.locator("tr[data-trace-id]", has=page.locator("[data-col='user']", has_text="carol"))
    expect(refused.locator("[data-col='error']")).to_have_text("upstream_400")
    expect(page.get_by_test_id("rejected-tag")).to_have_count(2)
    screenshot(page, "polish-calls")
    page.get_by_test_id("filter-status").select_option("rejected")
    expect(page.get_by_test_id("call-row")).to_have_count(2)
    models = sorted(
        c.inner_text().split("rejected")[0].strip() for c in page.locator("#calls-body [data-col='model']").all()
    )
    assert models == sorted(TYPOS)
    assert "status=rejected" in page.evaluate("location.hash")
    href = page.get_by_test_id("calls-csv").get_attribute("href") or ""
    assert "format=csv" in href and "status=rejected" in href
    with gw.client() as http:
        rows = list(csv.DictReader(io.StringIO(http.get("/" + href).text)))
    assert sorted(r["requested_model"] for r in rows) == sorted(TYPOS)


def test_date_range_picker_filters_calls_and_usage(gw: GatewayServer, page: Page) -> None:
    open_view(page, gw, "calls")
    page.get_by_test_id("calls-range").select_option("custom")
    page.get_by_test_id("calls-from").fill("2020-01-01")
    page.get_by_test_id("calls-to").fill("2020-01-31")
    page.get_by_test_id("calls-to").dispatch_event("change")
    expect(page.get_by_test_id("calls-count")).to_have_text("0 calls match")
    assert "from=2020-01-01" in page.evaluate("location.hash")
    page.get_by_test_id("calls-range").select_option("1")
    expect(page.get_by_test_id("calls-count")).to_have_text(f"{api(gw, '/api/traces')['total']} calls match")
    open_view(page, gw, "usage?from=2020-01-01&to=2020-01-31")
    expect(page.get_by_test_id("usage-range")).to_have_value("custom")
    expect(page.get_by_test_id("usage-empty")).to_be_visible()
    page.get_by_test_id("usage-range").select_option("7")
    expect(page.get_by_test_id("usage-calls")).to_have_attribute(
        "data-value", str(api(gw, "/api/usage")["total"]["calls"])
    )
    open_view(page, gw, "sessions?from=2020-01-01&to=2020-01-31")  # the sessions list takes the same picker
    expect(page.get_by_test_id("sessions-range")).to_have_value("custom")
    expect(page.get_by_test_id("sessions-empty")).to_be_visible()
    page.get_by_test_id("sessions-range").select_option("all")
    expect(page.get_by_test_id("sessions-count")).to_contain_text(f"{api(gw, '/api/sessions')['total']} session")


def test_tables_sort_by_header_and_keep_the_order_on_refresh(gw: GatewayServer, page: Page) -> None:
    open_view(page, gw, "calls")
    header = page.locator("#calls-table th", has_text="Tokens in")
    header.click()
    expect(header).to_have_attribute("data-sort", "desc")
    known = [float(v) for v in column(page, "tokens-in") if v]
    assert known == sorted(known, reverse=True) and len(known) >= 4
    header.click()
    expect(header).to_have_attribute("data-sort", "asc")
    known = [float(v) for v in column(page, "tokens-in") if v]
    assert known == sorted(known)
    before = page.get_by_test_id("call-row").count()
    assert chat(gw, "one more", user="dave").status_code == 200  # the poller re-renders the rows
    expect(page.get_by_test_id("call-row")).to_have_count(before + 1)
    known = [float(v) for v in column(page, "tokens-in") if v]
    assert known == sorted(known)
    page.locator("#calls-table th", has_text="User").click()
    users = [c.inner_text() for c in page.locator("#calls-body [data-col='user']").all()]
    assert users == sorted(users, key=lambda u: (u == "—", u.lower())) and users[-1] == "—"  # unknown last


def test_every_table_exports_csv_with_cost_by_bucket(gw: GatewayServer, page: Page) -> None:
    usage = api(gw, "/api/usage")
    open_view(page, gw, "usage")
    for table in ("usage-by-model", "usage-by-user", "usage-by-client"):
        expect(page.get_by_test_id(f"csv-{table}")).to_be_visible()
    with page.expect_download() as waiting:
        page.get_by_test_id("csv-usage-by-model").click()
    rows = list(csv.DictReader(io.StringIO(Path(waiting.value.path()).read_text())))
    by_model = {r["Model"]: r for r in rows}
    assert "(rejected)" in by_model and not set(TYPOS) & set(by_model)
    assert by_model["(rejected)"]["Calls"] == "2" and by_model["(rejected)"]["Cost"] == ""  # unknown, never 0
    assert {r["Cost: unpriced calls"] for r in rows} == {"0"}  # every model here is priced
    claude = next(r for m, r in by_model.items() if m.startswith("claude"))
    expected = next(r for r in usage["by_model"] if r["model"].startswith("claude"))
    assert (
        float(claude["Cache read $"]) == pytest.approx(expected["cost_cache_read"]) and expected["cost_cache_read"] > 0
    )
    buckets = ("Input $", "Cache read $", "Cache write $", "Output $", "Reasoning $")
    assert sum(float(claude[b]) for b in buckets) == pytest.approx(float(claude["Cost"]))
    open_view(page, gw, "sessions")
    expect(page.get_by_test_id("csv-sessions-table")).to_be_visible()
    expect(page.locator(f"tr[data-session-id='{SESSION}'] [data-col='session']")).to_have_text(SESSION)


def test_rejected_names_are_one_row_linking_to_the_calls(gw: GatewayServer, page: Page) -> None:
    open_view(page, gw, "usage")
    models = page.locator("#usage-by-model tbody tr")
    names = [r.get_attribute("data-name") for r in models.all()]
    assert "(rejected)" in names and not set(TYPOS) & set(names)
    for chart in ("chart-cost-model-day", "chart-tokens-model-day"):
        text = page.locator("figure.chart", has=page.locator(f"#{chart}")).text_content() or ""
        assert "(rejected)" not in text and not any(t in text for t in TYPOS), chart
    total = page.get_by_test_id("model-usage-total")
    expect(total.locator("[data-col='cost']")).to_contain_text("$")
    screenshot(page, "polish-usage")
    page.get_by_test_id("rejected-link").click()
    page.wait_for_selector("main#view[data-view='calls'][data-ready='1']")
    expect(page.get_by_test_id("call-row")).to_have_count(2)
    expect(page.get_by_test_id("filter-status")).to_have_value("rejected")
    suggestions = page.locator("#model-options option").evaluate_all("els => els.map(e => e.value)")
    assert "(rejected)" not in suggestions
    page.locator("#calls-body [data-col='model']").first.click()
    page.wait_for_selector("main#view[data-view='call'][data-ready='1']")
    expect(page.get_by_test_id("detail-rejected")).to_contain_text("rejected before any upstream was asked")
    expect(page.get_by_test_id("cost-total")).to_have_text("— (not billed)")


def test_long_prompts_fold_and_build_only_when_opened(gw: GatewayServer, page: Page) -> None:
    trace_id = gw.long_trace_id  # type: ignore[attr-defined]
    open_view(page, gw, f"call/{trace_id}")
    view = page.get_by_test_id("detail-input")
    system = view.get_by_test_id("folded-message")
    expect(system).to_have_count(1)
    expect(system.locator("summary")).to_have_text(f"System prompt ({kb(SYSTEM)})")
    assert "Rule: keep modules small" not in view.inner_text()  # folded: not even built
    folded = view.locator("[data-collapsed='1']")
    expect(folded).to_have_count(40)  # each 3.5 KB turn shows its first lines
    head = folded.first.inner_text()
    assert head.startswith("turn 0\ndef handler") and head.count("def handler") == 4  # its first 8 lines
    shown = len(view.inner_text())
    assert shown < 40_000, shown  # of a conversation of ~160 KB
    first = view.get_by_test_id("long-text").first
    expect(first.get_by_test_id("show-all")).to_have_text(f"show all ({kb(f'turn 0{chr(10)}{FILE}')})")
    first.get_by_test_id("show-all").click()
    expect(first.locator("[data-collapsed='0']")).to_contain_text(FILE.strip().splitlines()[-1])
    assert first.locator("[data-collapsed='0']").inner_text().count("def handler") == 70
    expect(first.get_by_test_id("show-all")).to_have_text("show less")
    screenshot(page, "polish-detail", full_page=False)
    system.locator("summary").click()
    expect(system).to_contain_text("Rule: keep modules small")
    expect(view).to_contain_text("the last question")  # short messages stay whole
    shown_cost = float(page.get_by_test_id("cost-total").get_attribute("data-value") or "nan")
    assert shown_cost == pytest.approx(api(gw, f"/api/traces/{trace_id}")["cost_total"])
