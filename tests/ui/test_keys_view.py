"""The Keys view in headless chromium: every key with its owner, models, limits and one bar per budget,
amber from 80% and red at 100%, unpriced calls beside the dollars; shown only to master-key holders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.fakes.upstream import FakeUpstream
from tests.gateway_server import GatewayServer, make_settings, model_config
from tests.http.test_keys_api import MASTER, as_master, chat, models
from tests.ui.browser import CHROMIUM, open_view, screenshot, watched_page

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with watched_page(browser, 1500, 700) as opened:
        yield opened


def make_key(gw: GatewayServer, **fields: Any) -> dict[str, Any]:
    found: dict[str, Any] = as_master(gw, "POST", "/admin/keys", json=fields)
    return found


def test_keys_view_shows_budgets_as_bars(tmp_path: Path, upstream: FakeUpstream, page: Page) -> None:
    settings = make_settings(tmp_path, master_key=MASTER)
    with GatewayServer(settings, model_config=model_config(models(upstream))) as gw:
        probe = make_key(gw, owner="probe")
        chat(gw, probe["key"])
        (cost,) = [k["spend_today"]["usd"] for k in as_master(gw, "GET", "/api/keys")["data"]]
        # Budgets set so one call spends 10%, 90% and 200% of them: green, amber, red.
        calm = make_key(gw, owner="alice", models=["gpt-fake"], budget_daily_usd=cost * 10, rpm=60, tpm=20000)
        close = make_key(gw, owner="bob", budget_daily_usd=cost / 0.9, budget_monthly_usd=cost * 100)
        over = make_key(gw, owner="carol", budget_monthly_usd=cost / 2)
        unpriced = make_key(gw, owner="dave", budget_daily_usd=1)
        for key in (calm, close, over):
            chat(gw, key["key"])
        chat(gw, unpriced["key"], "private-fake")
        as_master(gw, "DELETE", f"/admin/keys/{probe['id']}")

        page.goto(f"{gw.url}/ui?key={MASTER}#/keys")
        page.wait_for_selector("main#view[data-view='keys'][data-ready='1']")
        expect(page.get_by_test_id("nav-keys")).to_have_class("active")
        rows = page.get_by_test_id("key-row")
        expect(rows).to_have_count(4)  # the revoked one is hidden until asked for

        def row(key: dict[str, Any]) -> Any:
            return page.locator(f"tr[data-key-id='{key['id']}']")

        expect(row(calm).locator("[data-col='owner']")).to_have_text("alice")
        expect(row(calm).locator("[data-col='models']")).to_have_text("gpt-fake")
        expect(row(calm).locator("[data-col='key']")).to_contain_text(calm["hint"])
        expect(row(calm).locator("[data-col='rpm']")).to_have_attribute("data-value", "60")
        expect(row(calm).locator("[data-col='daily']")).to_have_attribute("data-level", "ok")
        expect(row(calm).locator("[data-col='monthly']")).to_contain_text("no budget")
        expect(row(close).locator("[data-col='daily']")).to_have_attribute("data-level", "warn")
        expect(row(close).locator("[data-col='daily']")).to_contain_text("90%")
        expect(row(close).locator("[data-col='monthly']")).to_have_attribute("data-level", "ok")
        expect(row(over).locator("[data-col='monthly']")).to_have_attribute("data-level", "over")
        expect(row(over).locator("[data-col='monthly']")).to_contain_text("200%")
        width = row(over).locator("[data-col='monthly'] .fill").evaluate("e => e.style.width")
        assert width == "100%"  # the bar is full, not past its end
        dave = row(unpriced).locator("[data-col='daily']")
        expect(dave).to_contain_text("+ 1 unpriced")  # never "$0" for a call without a price
        expect(dave).not_to_contain_text("$0 ")
        for key in (calm, close, over, unpriced):
            assert key["key"] not in page.content()
        screenshot(page, "keys")

        page.get_by_test_id("keys-revoked").check()
        expect(rows).to_have_count(5)
        expect(row(probe).locator("[data-col='status']")).to_have_text("revoked")
        expect(row(probe).locator("[data-col='last-used']")).not_to_have_text("never")
        assert "revoked=1" in page.url


def test_keys_view_is_not_offered_without_a_master_key(tmp_path: Path, upstream: FakeUpstream, page: Page) -> None:
    with GatewayServer(make_settings(tmp_path), model_config=model_config(models(upstream))) as gw:
        open_view(page, gw, "calls")
        expect(page.get_by_test_id("nav-usage")).to_be_visible()
        expect(page.get_by_test_id("nav-keys")).to_have_count(0)
        page.goto(f"{gw.url}/ui#/keys")
        expect(page.get_by_test_id("view-error")).to_contain_text("LLM_SCOPE_MASTER_KEY")
