"""The team views in headless chromium: sessions with their tool, the tool filter and column on calls, cost by
tool, and honest cost (unpriced calls counted beside the dollars, the unpriced models with their snippet)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import UPSTREAM_KEY, upstream_models
from tests.fakes.upstream import FakeUpstream
from tests.gateway_server import GatewayServer, make_settings, model_config
from tests.http.test_clients import CLAUDE_CODE, CLAUDE_SESSION, CLINE, CODEX, CODEX_SESSION
from tests.tracing.test_callfacts import CLAUDE_SYSTEM
from tests.ui.browser import CHROMIUM, api, open_view, screenshot, watched_page

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[GatewayServer]:
    """Claude Code (alice, 3 turns: one launching a subagent with its Task tool, one made by the subagent), Codex
    (bob, 3 turns of which 2 on a model without a price), Cline (carol, no session id: one is assigned)."""
    private = {
        "model_name": "private-fake",
        "litellm_params": {
            "model": "openai/acme-private-1",
            "api_base": upstream.openai_base_url,
            "api_key": UPSTREAM_KEY,
        },
    }
    settings = make_settings(Path(tmp_path_factory.mktemp("team-ui")), session_repo=True)
    with GatewayServer(settings, model_config=model_config([*upstream_models(upstream), private])) as server:
        with server.client() as http:
            for text in ("plan the change", "edit handle.py", "run the tests"):
                body = {"model": "claude-fake", "max_tokens": 50, "messages": [{"role": "user", "content": text}]}
                headers = {**CLAUDE_CODE, "x-user-id": "alice"}
                if text == "plan the change":  # its environment block names the repository and branch
                    body |= {"system": CLAUDE_SYSTEM, "tools": [{"name": "Task", "input_schema": {"type": "object"}}]}
                if text == "edit handle.py":  # a subagent's call, as Claude Code marks it
                    headers |= {"x-claude-code-agent-id": "a1", "x-claude-code-parent-agent-id": "main"}
                assert http.post("/v1/messages", headers=headers, json=body).status_code == 200
            for model in ("gpt-fake", "private-fake", "private-fake"):
                headers = {**CODEX, "x-user-id": "bob"}
                assert (
                    http.post("/v1/responses", headers=headers, json={"model": model, "input": "go"}).status_code == 200
                )
            body = {"model": "gpt-fake", "messages": [{"role": "user", "content": "explain"}]}
            assert (
                http.post("/v1/chat/completions", headers={**CLINE, "x-user-id": "carol"}, json=body).status_code == 200
            )
        yield server


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with watched_page(browser, 1500, 900) as opened:
        yield opened


def cell(row: Any, col: str) -> Any:
    return row.locator(f"[data-col='{col}']")


def test_sessions_show_tool_user_turns_cache_and_honest_cost(gw: GatewayServer, page: Page) -> None:
    sessions = {s["session_id"]: s for s in api(gw, "/api/sessions")["data"]}
    open_view(page, gw, "sessions")
    expect(page.get_by_test_id("session-row")).to_have_count(3)
    claude = page.locator(f"tr[data-session-id='{CLAUDE_SESSION}']")
    expect(cell(claude, "tools")).to_have_text("Task 1")
    expect(cell(claude, "subagents")).to_have_attribute("data-value", "1")
    expect(cell(claude, "retries")).to_have_text("—")
    expect(cell(claude, "repo")).to_have_text("llm-scope @ feat/sessions-17")
    expect(claude.get_by_test_id("session-derived")).to_have_count(0)
    expect(cell(claude, "client")).to_have_text("claude-code")
    expect(cell(claude, "user")).to_have_text("alice")
    saved = cell(claude, "cache-saved").get_attribute("data-value")
    assert saved and float(saved) == pytest.approx(sessions[CLAUDE_SESSION]["cache_saved_usd"])
    expect(cell(claude, "calls")).to_have_attribute("data-value", "3")
    expect(cell(claude, "fresh-in")).to_have_attribute(
        "data-value", str(sessions[CLAUDE_SESSION]["fresh_input_tokens"])
    )
    codex = page.locator(f"tr[data-session-id='{CODEX_SESSION}']")
    expect(cell(codex, "client")).to_have_text("codex")
    expect(cell(codex, "cost")).to_contain_text("+ 2 unpriced")  # never "$0" for what has no price
    expect(cell(codex, "cost")).to_have_attribute("data-unpriced", "2")
    assert float(cell(codex, "cost").get_attribute("data-value")) == pytest.approx(
        sessions[CODEX_SESSION]["cost_total"]
    )
    href = page.get_by_test_id("sessions-csv").get_attribute("href")
    assert href is not None and "format=csv" in href
    screenshot(page, "team-sessions")

    page.get_by_test_id("sessions-range").select_option("1")  # the last 24 hours: all sessions are from now
    expect(page.get_by_test_id("sessions-count")).to_have_text("3 sessions")
    assert "range=1" in page.url
    cline = page.locator("tr[data-session-id^='auto-']")  # Cline's call, sent without a session id, got one
    expect(cell(cline, "client")).to_have_text("cline")
    expect(cline.get_by_test_id("session-derived")).to_have_text("grouped")
    page.get_by_test_id("sessions-client").select_option("codex")
    expect(page.get_by_test_id("session-row")).to_have_count(1)
    expect(page.locator(f"tr[data-session-id='{CODEX_SESSION}']")).to_be_visible()
    assert "client=codex" in page.url


def test_a_session_shows_its_turns_with_cache_buckets_and_unpriced_turns(gw: GatewayServer, page: Page) -> None:
    open_view(page, gw, f"session/{CODEX_SESSION}")
    expect(page.get_by_test_id("session-id")).to_have_text(CODEX_SESSION)  # the full id
    expect(page.get_by_test_id("session-client")).to_have_attribute("data-value", "codex")
    expect(page.get_by_test_id("session-calls-count")).to_have_attribute("data-value", "3")
    expect(page.get_by_test_id("session-cost")).to_contain_text("+ 2 unpriced")
    expect(page.get_by_test_id("session-cache-saved")).not_to_have_attribute("data-value", "")
    rows = page.get_by_test_id("session-call")
    expect(rows).to_have_count(3)
    expect(cell(rows.nth(1), "cost")).to_have_text("unpriced")
    expect(cell(rows.nth(0), "cost")).not_to_have_text("unpriced")
    turn = api(gw, f"/api/sessions/{CODEX_SESSION}")["turns"][0]
    expect(cell(rows.nth(0), "cache-read")).to_have_attribute("data-value", str(turn["cache_read_tokens"]))
    screenshot(page, "team-session")


def test_a_session_shows_its_tool_calls_subagents_retries_and_repository(gw: GatewayServer, page: Page) -> None:
    open_view(page, gw, f"session/{CLAUDE_SESSION}")
    expect(page.get_by_test_id("session-tool-calls")).to_have_attribute("data-value", "1")
    expect(page.get_by_test_id("session-subagents")).to_have_attribute("data-value", "1")
    expect(page.get_by_test_id("session-retries")).to_have_attribute("data-value", "0")
    expect(page.get_by_test_id("session-repo")).to_contain_text("llm-scope @ feat/sessions-17")
    expect(page.get_by_test_id("session-tools").locator("[data-tool='Task']")).to_have_attribute("data-value", "1")
    rows = page.get_by_test_id("session-call")
    expect(cell(rows.nth(0), "tools")).to_contain_text("Task 1")
    expect(rows.nth(1).get_by_test_id("call-subagent")).to_have_text("subagent")
    expect(page.get_by_test_id("call-subagent")).to_have_count(1)
    rows.nth(0).locator("a").first.click()  # the call itself says the same
    expect(page.get_by_test_id("detail-tools").locator("[data-tool='Task']")).to_have_attribute("data-value", "1")
    expect(page.get_by_test_id("detail-repo")).to_have_text("llm-scope @ feat/sessions-17")


def test_calls_filter_by_tool(gw: GatewayServer, page: Page) -> None:
    open_view(page, gw, "calls?client=cline")
    expect(page.get_by_test_id("call-row")).to_have_count(1)
    expect(page.get_by_test_id("call-row").locator("[data-col='client']")).to_have_text("cline")
    page.get_by_test_id("filter-client").fill("claude-code")
    expect(page.get_by_test_id("call-row")).to_have_count(3)


def test_usage_shows_cost_by_tool_and_the_unpriced_models(gw: GatewayServer, page: Page) -> None:
    open_view(page, gw, "usage")
    expect(page.get_by_test_id("usage-cost")).to_contain_text("+ 2 unpriced")
    expect(page.get_by_test_id("usage-unpriced")).to_have_attribute("data-value", "2")
    bars = page.locator("svg#chart-calls-by-client [data-testid='bar']")
    labels = bars.evaluate_all("els => els.map(e => e.dataset.label)")
    assert sorted(labels) == ["claude-code", "cline", "codex"]
    rows = page.get_by_test_id("client-usage-row")
    expect(rows).to_have_count(3)
    expect(page.locator("tr[data-name='codex'] [data-col='cost']")).to_contain_text("+ 2 unpriced")
    unpriced = page.get_by_test_id("unpriced-model")
    expect(unpriced).to_have_count(1)
    expect(unpriced).to_have_attribute("data-model", "private-fake")
    expect(unpriced.locator("pre")).to_contain_text("input_cost_per_token")
    expect(unpriced.locator("pre")).to_contain_text("model: openai/acme-private-1")
    screenshot(page, "team-usage")
