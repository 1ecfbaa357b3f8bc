"""Regenerate the README's dashboard screenshots: `python -m tests.ui.screenshot [docs/dashboard.png]` (and
docs/sessions.png, docs/session.png and docs/keys.png beside it).

Starts the fake upstream and a gateway on a scratch data dir, loads a week of made-up history through the
trace pipeline (so the per-day charts have days to show), makes today's calls through the gateway for real
(Anthropic Messages with tools, Responses, chat, embeddings, an error), and photographs the Usage view.
Every view is also saved under tests/ui/artifacts/demo-*.png.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from llm_scope.types import CallRecord, Cost, Usage
from tests.fakes.upstream import FakeUpstream, start_fake_upstream
from tests.gateway_server import GatewayServer, make_settings, model_config
from tests.ui.browser import TOOLS, chromium, open_view, screenshot

USERS = ["alice", "bob", "carol", "dave", "erin"]
MODELS = [  # (alias, provider, upstream model, weight)
    ("claude-sonnet", "anthropic", "claude-sonnet-4-5", 5),
    ("gpt-4o", "openai", "gpt-4o", 3),
    ("gpt-4o-mini", "openai", "gpt-4o-mini", 6),
    ("opus-preview", "anthropic", "claude-opus-preview", 1),  # not in the price table: unpriced
]
# Each user's tool, as attribution names it; today's calls send the headers the tool itself sends.
CLIENTS = ["claude-code", "codex", "cursor", "cline", "aider"]
AGENTS = {
    "claude-code": {"user-agent": "claude-cli/2.0.14 (external, cli)", "x-app": "cli"},
    "codex": {"user-agent": "codex_cli_rs/0.50.0 (Mac OS 15.0.0; arm64)", "originator": "codex_cli_rs"},
    "cursor": {"user-agent": "Mozilla/5.0 (Macintosh) AppleWebKit/537.36 Cursor/1.7.2 Chrome/132.0"},
}


def demo_models(upstream: FakeUpstream) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for alias, provider, model, _ in MODELS:
        base = upstream.url if provider == "anthropic" else upstream.openai_base_url
        out.append({"model_name": alias, "litellm_params": {"model": f"{provider}/{model}", "api_base": base}})
    embed = {"model": "openai/text-embedding-3-small", "api_base": upstream.openai_base_url}
    return [*out, {"model_name": "embed", "litellm_params": embed}]


def history(days: int = 7, seed: int = 7) -> list[CallRecord]:
    """Plausible past calls: coding sessions of 5-40 calls, users with habits, slower big models."""
    rng = random.Random(seed)
    now = time.time()
    records: list[CallRecord] = []
    for day in range(days, 0, -1):
        for user in USERS:
            for _ in range(rng.randint(0, 3)):
                start = now - day * 86400 + rng.uniform(8, 18) * 3600 - 12 * 3600
                session = f"{rng.getrandbits(128):032x}"
                session = f"{session[:8]}-{session[8:12]}-{session[12:16]}-{session[16:20]}-{session[20:]}"
                alias, provider, model, _ = rng.choices(MODELS, weights=[m[3] for m in MODELS])[0]
                cached = 0  # the prompt prefix the provider has cached: it grows turn by turn, and now and then breaks
                system, turns = f"You are {CLIENTS[USERS.index(user)]}.", []
                for step in range(rng.randint(5, 40)):
                    latency = rng.lognormvariate(0.4 if "mini" in model else 1.2, 0.5)
                    inp, out = cached + rng.randint(2_000, 12_000), rng.randint(50, 2_500)
                    read = cached
                    if step and rng.random() < 0.08:  # the cache breaks: the system prompt, a compaction or a pause
                        read, cause = 0, rng.choice(("system", "messages", "expired"))
                        if cause == "system":
                            system += " Today's date changed."
                        elif cause == "messages":
                            turns = [{"role": "user", "content": "(summary of the conversation so far)"}]
                        else:
                            start += 600
                    turns = [*turns, {"role": "user", "content": f"step {step}"}]
                    write = (inp - read) * 9 // 10 if provider == "anthropic" else 0
                    records.append(
                        CallRecord(
                            trace_id=f"{rng.getrandbits(128):032x}",
                            route="messages" if provider == "anthropic" else "chat_completion",
                            start_time=start,
                            end_time=start + latency,
                            completion_start_time=start + latency * rng.uniform(0.1, 0.3),
                            upstream_latency=latency - 0.002,
                            user_id=user,
                            session_id=session,
                            client=CLIENTS[USERS.index(user)],
                            requested_model=alias,
                            resolved_model=model,
                            provider=provider,
                            stream=True,
                            input={"system": system, "messages": turns},
                            usage=Usage(input=inp, output=out, total=inp + out, cache_read=read, cache_write=write),
                        )
                    )
                    cached = min(inp, 150_000)
                    start += latency + rng.uniform(5, 90)
    return records


def today(gw: GatewayServer) -> None:
    claude = {**AGENTS["claude-code"], "x-user-id": "alice", "x-claude-code-session-id": "alice-refactor"}
    codex = {**AGENTS["codex"], "x-user-id": "bob", "session_id": "bob-tests"}
    tool = [{"name": "read_file", "description": "Read a file", "input_schema": {"type": "object"}}]
    with gw.client() as c:
        for text in ("Refactor the retry loop in gateway/handle.py", "Now add a test for it", "Run the tests"):
            c.post(
                "/v1/messages",
                headers=claude,
                json={"model": "claude-sonnet", "max_tokens": 1024, "messages": [{"role": "user", "content": text}]},
            )
        c.post(
            "/v1/messages",
            headers=claude,
            json={"model": "claude-sonnet", "max_tokens": 1024, "tools": tool, "stream": True,
                  "messages": [{"role": "user", "content": "Open settings.py"}]},
        )  # fmt: skip
        c.post("/v1/responses", headers=codex, json={"model": "gpt-4o", "input": "Why does test_retry fail?"})
        c.post(
            "/v1/chat/completions",
            headers={**AGENTS["cursor"], "x-user-id": "carol", "x-session-id": "carol-docs"},
            json={"model": "gpt-4o-mini", "tools": TOOLS, "messages": [{"role": "user", "content": "Weather?"}]},
        )
        c.post("/v1/embeddings", headers={"x-user-id": "dave"}, json={"model": "embed", "input": ["a", "b"]})
        c.post(
            "/v1/chat/completions",
            headers={"x-user-id": "dave", "x-session-id": "dave-bench"},
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "FAKE_ERROR_429"}]},
        )


DEMO_MASTER_KEY = "sk-demo-master-key-for-screenshots"
KEYS = [  # owner, allowed models, daily budget, monthly budget, rpm, tpm, share of the daily budget spent today
    ("alice", None, 20.0, 300.0, 120, 400_000, 0.35),
    ("bob", ["gpt-4o", "gpt-4o-mini"], 10.0, 150.0, 60, 200_000, 0.86),
    ("carol", ["claude-sonnet"], 5.0, 40.0, None, None, 1.04),
    ("dave", None, None, 100.0, 30, None, 0.5),
    ("ci-pipeline", ["gpt-4o-mini"], 2.0, None, 600, 1_000_000, 0.12),
]


def keys_demo(upstream: FakeUpstream, out: Path) -> None:
    """The Keys view: five keys with budgets at different levels, a week of spend each, one unpriced model."""
    rng = random.Random(3)
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(Path(tmp), master_key=DEMO_MASTER_KEY)
        with GatewayServer(settings, model_config=model_config(demo_models(upstream))) as gw:
            auth = {"authorization": f"Bearer {DEMO_MASTER_KEY}"}
            now = time.time()
            midnight = now - now % 86400
            n = 0
            with gw.client() as c:
                for owner, models, daily, monthly, rpm, tpm, share in KEYS:
                    body = {"owner": owner, "models": models, "budget_daily_usd": daily,
                            "budget_monthly_usd": monthly, "rpm": rpm, "tpm": tpm}  # fmt: skip
                    key = c.post("/admin/keys", headers=auth, json=body).json()
                    today_usd = (daily or 10.0) * share
                    for day in range(6, -1, -1):
                        usd = today_usd if day == 0 else (daily or 10.0) * rng.uniform(0.2, 0.9)
                        for part in range(8):
                            n += 1
                            at = max(midnight - day * 86400, now - day * 86400 - 3600) + part * 60
                            unpriced = owner == "dave" and part == 0
                            model = "opus-preview" if unpriced else "gpt-4o"
                            gw.app.state.pipeline.submit(CallRecord(
                                trace_id=f"{n:032x}", route="chat_completion", start_time=at, end_time=at + 2,
                                key_id=key["id"], user_id=owner, requested_model=model,
                                usage=Usage(input=4000, output=500, total=4500),
                                cost=None if unpriced else Cost(input=usd / 16, output=usd / 16, total=usd / 8),
                            ))  # fmt: skip
            with chromium() as browser:
                page = browser.new_page(viewport={"width": 1440, "height": 520}, device_scale_factor=1)
                page.goto(f"{gw.url}/ui?key={DEMO_MASTER_KEY}#/keys")
                page.wait_for_selector("main#view[data-view='keys'][data-ready='1']")
                page.wait_for_function("document.querySelectorAll('[data-testid=key-row]').length === 5")
                screenshot(page, "demo-keys")
                page.screenshot(path=str(out))


def main(out: Path) -> None:
    upstream = start_fake_upstream()
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(Path(tmp))
        with GatewayServer(settings, model_config=model_config(demo_models(upstream))) as gw:
            for record in history():
                gw.app.state.pipeline.submit(record)
            today(gw)
            with chromium() as browser:
                page = browser.new_page(viewport={"width": 1440, "height": 1000}, device_scale_factor=1)
                for view in ("calls", "usage", "sessions"):
                    screenshot(open_view(page, gw, view), f"demo-{view}", full_page=view != "calls")
                out.parent.mkdir(parents=True, exist_ok=True)
                open_view(page, gw, "sessions?sort=cost").screenshot(path=str(out.parent / "sessions.png"))
                rows = page.get_by_test_id("session-row")
                calls = rows.locator("[data-col=calls]").evaluate_all("els => els.map(e => +e.dataset.value)")
                rows.nth(calls.index(max(calls))).locator("a").click()  # the busiest session
                page.wait_for_selector("main#view[data-view='session'][data-ready='1']")
                screenshot(page, "demo-session")
                page.screenshot(path=str(out.parent / "session.png"), full_page=True)
                open_view(page, gw, "calls?user=alice")
                page.locator("[data-testid=call-row]").first.click()
                page.wait_for_selector("main#view[data-view='call'][data-ready='1']")
                screenshot(page, "demo-call")
                open_view(page, gw, "usage?range=7")
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out))
    keys_demo(upstream, out.parent / "keys.png")
    upstream.stop()
    print(f"wrote {out}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--keys"]:  # only docs/keys.png (or the path given)
        fake = start_fake_upstream()
        keys_demo(fake, Path(sys.argv[2] if len(sys.argv) > 2 else "docs/keys.png"))
        fake.stop()
    else:
        main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/dashboard.png"))
