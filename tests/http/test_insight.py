"""The team read API end to end: sessions, a session's turns, usage by group, unpriced models and CSV, over
calls the gateway served to recorded tool shapes."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import UPSTREAM_KEY, upstream_models
from tests.fakes.upstream import FakeUpstream
from tests.gateway_server import GatewayServer, make_settings, model_config
from tests.http.test_clients import CLAUDE_CODE, CLAUDE_SESSION, CODEX, CODEX_SESSION


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[httpx.Client]:
    private = {
        "model_name": "private-fake",
        "litellm_params": {
            "model": "openai/acme-private-1",
            "api_base": upstream.openai_base_url,
            "api_key": UPSTREAM_KEY,
        },
    }
    settings = make_settings(Path(tmp_path_factory.mktemp("insight")))
    with (
        GatewayServer(settings, model_config=model_config([*upstream_models(upstream), private])) as gw,
        gw.client() as http,
    ):
        for text in ("plan", "edit", "test"):
            body = {"model": "claude-fake", "max_tokens": 50, "messages": [{"role": "user", "content": text}]}
            assert http.post("/v1/messages", headers=CLAUDE_CODE, json=body).status_code == 200
        for model in ("gpt-fake", "private-fake", "private-fake"):
            assert http.post("/v1/responses", headers=CODEX, json={"model": model, "input": "go"}).status_code == 200
        assert (
            http.post(
                "/v1/chat/completions",
                headers={"user-agent": "curl/8.5.0"},
                json={"model": "gpt-fake", "messages": [{"role": "user", "content": "no session"}]},
            ).status_code
            == 200
        )
        yield http


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_sessions_with_tool_turns_cost_and_unpriced(served: httpx.Client) -> None:
    found = served.get("/api/sessions").json()
    assert found["total"] == 3  # curl's call, sent without a session id, got one when it was stored
    by_id: dict[str, dict[str, Any]] = {s["session_id"]: s for s in found["data"]}
    claude, codex = by_id[CLAUDE_SESSION], by_id[CODEX_SESSION]
    assert (claude["client"], claude["calls"], claude["unpriced_calls"]) == ("claude-code", 3, 0)
    assert claude["cost_total"] > 0 and claude["models"] == ["claude-haiku-4-5-20251001"]
    assert (codex["client"], codex["calls"], codex["unpriced_calls"]) == ("codex", 3, 2)
    assert codex["cost_total"] > 0  # the priced gpt-4o-mini call only: unknown is never added as $0
    assert set(codex["models"]) == {"gpt-4o-mini", "acme-private-1"}
    for session in (claude, codex):
        assert session["fresh_input_tokens"] == (
            session["input_tokens"] - session["cache_read_tokens"] - session["cache_write_tokens"]
        )
    only = served.get("/api/sessions", params={"client": "codex"}).json()
    assert [s["session_id"] for s in only["data"]] == [CODEX_SESSION]
    assert served.get("/api/sessions", params={"sort": "bogus"}).status_code == 400
    by_cost = served.get("/api/sessions", params={"sort": "unpriced", "order": "desc"}).json()
    assert by_cost["data"][0]["session_id"] == CODEX_SESSION


def test_one_session_lists_its_turns_and_exports_csv(served: httpx.Client) -> None:
    found = served.get(f"/api/sessions/{CODEX_SESSION}").json()
    assert [t["turn"] for t in found["turns"]] == [1, 2, 3]
    assert [t["unpriced"] for t in found["turns"]] == [False, True, True]
    assert [t["client"] for t in found["turns"]] == ["codex"] * 3
    exported = served.get(f"/api/sessions/{CODEX_SESSION}", params={"format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    rows = rows_of(exported.text)
    assert [r["turn"] for r in rows] == ["1", "2", "3"] and rows[1]["cost_total"] == ""  # unknown stays empty
    assert served.get("/api/sessions/no-such-session").status_code == 404


def test_usage_by_group_and_in_all_counts_unpriced_calls(served: httpx.Client) -> None:
    by_client = {r["client"]: r for r in served.get("/api/usage", params={"group_by": "client"}).json()["data"]}
    assert {k: v["calls"] for k, v in by_client.items()} == {"claude-code": 3, "codex": 3, "curl": 1}
    assert by_client["codex"]["unpriced_calls"] == 2
    by_model = {r["model"]: r for r in served.get("/api/usage", params={"group_by": "model"}).json()["data"]}
    assert by_model["acme-private-1"]["cost_total"] is None and by_model["acme-private-1"]["unpriced_calls"] == 2
    exported = rows_of(served.get("/api/usage", params={"group_by": "user", "format": "csv"}).text)
    assert sum(int(r["calls"]) for r in exported) == 7
    whole = served.get("/api/usage").json()
    assert whole["total"]["unpriced_calls"] == 2 and whole["total"]["calls"] == 7
    assert served.get("/api/usage", params={"group_by": "day"}).status_code == 400
    assert served.get("/api/usage", params={"format": "csv"}).status_code == 400
    assert served.get("/api/stats").json()["by_day_user"][0]["unpriced_calls"] == 2


def test_unpriced_models_with_the_snippet_that_prices_them(served: httpx.Client) -> None:
    found = served.get("/api/unpriced-models").json()
    assert found["unpriced_calls"] == 2
    (row,) = found["data"]
    assert (row["requested_model"], row["provider"], row["calls"]) == ("private-fake", "openai", 2)
    entry = yaml.safe_load(row["snippet"])[0]
    assert entry["litellm_params"]["model"] == "openai/acme-private-1"
    assert {"input_cost_per_token", "output_cost_per_token"} <= set(entry["model_info"])
    exported = rows_of(served.get("/api/unpriced-models", params={"format": "csv"}).text)
    assert exported[0]["requested_model"] == "private-fake"


def test_csv_cells_a_spreadsheet_would_run_are_defused(gateway: GatewayServer) -> None:
    hostile = '=HYPERLINK("http://x","y")'
    with gateway.client() as http:
        body = {"model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}]}
        assert http.post("/v1/chat/completions", headers={"x-session-id": hostile}, json=body).status_code == 200
        (row,) = rows_of(http.get("/api/sessions", params={"format": "csv"}).text)
        assert row["session_id"] == "'" + hostile
        assert http.get("/api/sessions", params={"format": "xml"}).status_code == 400


def test_calls_without_an_id_carry_a_derived_one_assigned_when_stored(served: httpx.Client) -> None:
    (auto,) = [s for s in served.get("/api/sessions").json()["data"] if s["derived"]]
    assert auto["session_id"].startswith("auto-") and (auto["client"], auto["calls"]) == ("curl", 1)
    (turn,) = served.get(f"/api/sessions/{auto['session_id']}").json()["turns"]
    assert turn["client"] == "curl" and turn["session_derived"] is True
    assert auto["session_id"] == "auto-" + turn["trace_id"]
    assert served.get(f"/api/traces/{turn['trace_id']}").json()["session_id"] == auto["session_id"]  # the row too
    derived = served.get("/api/sessions", params={"derive": "1"}).json()  # still answers, the same sessions
    assert sorted(s["session_id"] for s in derived["data"]) == sorted(
        s["session_id"] for s in served.get("/api/sessions").json()["data"]
    )
    assert served.get("/api/sessions", params={"derive": "maybe"}).status_code == 400


def test_what_the_cache_saved_at_list_prices(served: httpx.Client) -> None:
    sessions = {s["session_id"]: s for s in served.get("/api/sessions").json()["data"]}
    claude = sessions[CLAUDE_SESSION]
    assert claude["cache_read_tokens"] > 0 and claude["cache_saved_usd"] > 0  # Haiku's reads cost a tenth
    turns = served.get(f"/api/sessions/{CODEX_SESSION}").json()["turns"]
    assert turns[0]["cache_saved_usd"] > 0 and [t["cache_saved_usd"] for t in turns[1:]] == [None, None]  # unpriced
    by_client = {r["client"]: r for r in served.get("/api/usage", params={"group_by": "client"}).json()["data"]}
    assert by_client["claude-code"]["cache_saved_usd"] == pytest.approx(claude["cache_saved_usd"])
