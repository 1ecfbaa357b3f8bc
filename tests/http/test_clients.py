"""Client attribution end to end: recorded request shapes of the real tools through the gateway land in the
store, the read API's client filter and the Prometheus client label, each with the right session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import upstream_models
from tests.fakes.upstream import FakeUpstream
from tests.gateway_server import GatewayServer, make_settings, model_config

CLAUDE_SESSION = "5b4c2f0e-8d1a-4c3e-9f21-0d6e7a1b2c3d"
CODEX_SESSION = "8f1f0b18-2fb3-4c24-9a9a-0000000000aa"
CLAUDE_CODE = {
    "user-agent": "claude-cli/2.0.14 (external, cli)",
    "x-app": "cli",
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
    "x-stainless-lang": "js",
    "x-stainless-package-version": "0.60.0",
    "x-claude-code-session-id": CLAUDE_SESSION,
}
CODEX = {
    "user-agent": "codex_cli_rs/0.38.0 (Ubuntu 24.04.2 LTS; x86_64) WindowsTerminal",
    "originator": "codex_cli_rs",
    "version": "0.38.0",
    "session_id": CODEX_SESSION,
    "conversation_id": CODEX_SESSION,
}
CLINE = {"user-agent": "OpenAI/JS 4.83.0", "http-referer": "https://cline.bot", "x-title": "Cline"}


def _calls(gw: GatewayServer) -> None:
    with gw.client() as http:
        for text in ("read the repo", "now fix it"):
            r = http.post(
                "/v1/messages",
                headers=CLAUDE_CODE,
                json={"model": "claude-fake", "max_tokens": 50, "messages": [{"role": "user", "content": text}]},
            )
            assert r.status_code == 200, r.text
        r = http.post("/v1/responses", headers=CODEX, json={"model": "gpt-fake", "input": "run the tests"})
        assert r.status_code == 200, r.text
        r = http.post(
            "/v1/chat/completions",
            headers=CLINE,
            json={"model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 200, r.text
        r = http.post(
            "/v1/chat/completions",
            headers={"user-agent": "TeamBot/3.1 (internal)"},
            json={"model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 200, r.text
    # The official SDK, as llm and aider send it to a plain OpenAI base URL.
    sdk = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
    sdk.chat.completions.create(model="gpt-fake", messages=[{"role": "user", "content": "hi"}])


def _client_requests(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "llm_scope_client_requests_total":
                client = sample.labels["client"]
                out[client] = out.get(client, 0) + sample.value
    return out


def test_real_tools_are_attributed_in_the_store_the_api_and_metrics(tmp_path: Path, upstream: FakeUpstream) -> None:
    settings = make_settings(tmp_path)
    with GatewayServer(settings, model_config=model_config(upstream_models(upstream))) as gw:
        _calls(gw)
        with gw.client() as http:
            rows: list[dict[str, Any]] = http.get("/api/traces", params={"limit": 50}).json()["data"]
            by_client: dict[str, list[dict[str, Any]]] = {}
            for row in rows:
                by_client.setdefault(row["client"], []).append(row)
            assert {k: len(v) for k, v in by_client.items()} == {
                "claude-code": 2,
                "codex": 1,
                "cline": 1,
                "TeamBot": 1,
                "openai-python": 1,
            }
            assert {row["session_id"] for row in by_client["claude-code"]} == {CLAUDE_SESSION}
            assert by_client["codex"][0]["session_id"] == CODEX_SESSION  # Codex's `session_id` header
            filtered = http.get("/api/traces", params={"client": "claude-code"}).json()
            assert filtered["total"] == 2 and all(row["client"] == "claude-code" for row in filtered["data"])
            detail = http.get(f"/api/traces/{by_client['codex'][0]['trace_id']}").json()
            assert detail["client_version"] == "0.38.0"
            claude = http.get(f"/api/traces/{by_client['claude-code'][0]['trace_id']}").json()
            assert claude["client_version"] == "2.0.14"
            metrics = _client_requests(http.get("/metrics").text)
    # Known tools by name; an agent of its own is counted, but as "other" (a bounded label).
    assert metrics == {"claude-code": 2, "codex": 1, "cline": 1, "other": 1, "openai-python": 1}
