"""Headless Debian chromium driven by Playwright, and helpers to seed a gateway with calls and open dashboard views.

Playwright's own browser downloads are never used: the browser is the system's /usr/bin/chromium.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from tests.fakes.upstream import FakeUpstream
from tests.gateway_server import GatewayServer

if TYPE_CHECKING:  # Playwright is imported only when a browser is wanted (test_routes.py needs none)
    from playwright.sync_api import Browser, Page

CHROMIUM = Path(os.environ.get("LLM_SCOPE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("LLM_SCOPE_UI_ARTIFACTS", Path(__file__).parent / "artifacts"))
AGENT = "ui-test-agent/1.0"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


@contextmanager
def chromium() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def extra_models(upstream: FakeUpstream) -> list[dict[str, Any]]:
    """A second priced model next to conftest's gpt-fake (gpt-4o-mini), so charts have two series."""
    return [
        {
            "model_name": "gpt-big",
            "litellm_params": {"model": "openai/gpt-4o", "api_base": upstream.openai_base_url, "api_key": "sk-x"},
        }
    ]


def chat(
    gw: GatewayServer,
    content: str,
    *,
    model: str = "gpt-fake",
    user: str | None = None,
    session: str | None = None,
    key: str | None = None,
    **body: Any,
) -> httpx.Response:
    headers = {"user-agent": AGENT}
    if user:
        headers["x-user-id"] = user
    if session:
        headers["x-session-id"] = session
    if key:
        headers["authorization"] = f"Bearer {key}"
    with gw.client() as client:
        resp = client.post(
            "/v1/chat/completions",
            headers=headers,
            json={"model": model, "messages": [{"role": "user", "content": content}], **body},
        )
        resp.read()
        return resp


def api(gw: GatewayServer, path: str, key: str | None = None, **params: Any) -> Any:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    with gw.client() as client:
        resp = client.get(path, params=params, headers=headers)
        resp.raise_for_status()
        return resp.json()


def open_view(page: Page, gw: GatewayServer, route: str) -> Page:
    """Open /ui#/<route> and wait until that view has rendered its data."""
    view = route.split("?")[0].split("/")[0]
    page.goto(f"{gw.url}/ui#/{route}")
    page.wait_for_selector(f"main#view[data-view='{view}'][data-ready='1']", timeout=10_000)
    return page


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


@contextmanager
def watched_page(browser: Browser, width: int, height: int) -> Iterator[Page]:
    """A fresh page in its own context; any uncaught error in the page's scripts fails the test."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"
