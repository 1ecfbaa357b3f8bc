"""GET /api/keys: master key only; every key (revoked too) with its hint, never its hash or secret, and its
spend today and this month from the trace store, unpriced calls counted beside the dollars."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import UPSTREAM_KEY, upstream_models
from tests.fakes.upstream import FakeUpstream
from tests.gateway_server import GatewayServer, make_settings, model_config

MASTER = "sk-master-keys-api-0123456789"


def models(upstream: FakeUpstream) -> list[dict[str, Any]]:
    private = {
        "model_name": "private-fake",
        "litellm_params": {
            "model": "openai/acme-private-1",
            "api_base": upstream.openai_base_url,
            "api_key": UPSTREAM_KEY,
        },
    }
    return [*upstream_models(upstream), private]


@pytest.fixture
def gw(tmp_path: Path, upstream: FakeUpstream) -> Iterator[GatewayServer]:
    with GatewayServer(make_settings(tmp_path, master_key=MASTER), model_config=model_config(models(upstream))) as s:
        yield s


def as_master(gw: GatewayServer, method: str, path: str, **kw: Any) -> Any:
    with gw.client() as c:
        resp = c.request(method, path, headers={"authorization": f"Bearer {MASTER}"}, **kw)
        assert resp.status_code < 300, resp.text
        return resp.json()


def chat(gw: GatewayServer, key: str, model: str = "gpt-fake") -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
    with gw.client() as c:
        assert c.post("/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, json=body).status_code == 200


def test_keys_list_budgets_and_spend_against_them(gw: GatewayServer) -> None:
    made = as_master(
        gw,
        "POST",
        "/admin/keys",
        json={
            "owner": "alice",
            "models": ["gpt-fake"],
            "budget_daily_usd": 5,
            "budget_monthly_usd": 50,
            "rpm": 60,
            "tpm": 10000,
        },
    )
    other = as_master(gw, "POST", "/admin/keys", json={"owner": "bob"})
    idle = as_master(gw, "POST", "/admin/keys", json={"owner": "carol", "budget_monthly_usd": 1})
    chat(gw, made["key"])
    chat(gw, made["key"])
    chat(gw, other["key"], "private-fake")  # no price: counted, never $0
    as_master(gw, "DELETE", f"/admin/keys/{idle['id']}")

    with gw.client() as c:
        raw = c.get("/api/keys", headers={"authorization": f"Bearer {MASTER}"}).text
    for key in (made, other, idle):
        assert key["key"] not in raw  # neither the secret...
    found = as_master(gw, "GET", "/api/keys")
    assert "hash" not in raw and all("hash" not in k and "key" not in k for k in found["data"])
    by_id = {k["id"]: k for k in found["data"]}
    assert set(by_id) == {made["id"], other["id"], idle["id"]}

    usage = {r["key"]: r for r in as_master(gw, "GET", "/api/usage", params={"group_by": "key"})["data"]}
    alice = by_id[made["id"]]
    assert alice["owner"] == "alice" and alice["hint"] == made["hint"] and alice["models"] == ["gpt-fake"]
    assert (alice["budget_daily_usd"], alice["budget_monthly_usd"], alice["rpm"], alice["tpm"]) == (5, 50, 60, 10000)
    assert alice["spend_today"]["calls"] == alice["spend_month"]["calls"] == 2
    assert alice["spend_today"]["usd"] > 0
    assert alice["spend_today"]["usd"] == pytest.approx(usage[made["id"]]["cost_total"])
    assert alice["spend_month"]["usd"] == pytest.approx(alice["spend_today"]["usd"])
    assert alice["spend_today"]["unpriced_calls"] == 0 and alice["last_used"] is not None
    assert alice["created"] == pytest.approx(made["created"]) and alice["revoked"] is None

    bob = by_id[other["id"]]
    assert bob["spend_today"] == {"calls": 1, "usd": None, "unpriced_calls": 1}
    assert bob["budget_daily_usd"] is None and bob["models"] is None

    carol = by_id[idle["id"]]
    assert carol["revoked"] is not None and carol["last_used"] is None
    assert carol["spend_today"] == carol["spend_month"] == {"calls": 0, "usd": 0.0, "unpriced_calls": 0}
    assert len(found["day"]) == 10 and found["day"].startswith(found["month"])


def test_only_the_master_key_may_list_keys(gw: GatewayServer, tmp_path: Path, upstream: FakeUpstream) -> None:
    made = as_master(gw, "POST", "/admin/keys", json={"owner": "dan"})
    with gw.client() as c:
        missing = c.get("/api/keys")
        assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"
        assert c.get("/api/keys", headers={"authorization": "Bearer sk-wrong"}).status_code == 401
        virtual = c.get("/api/keys", headers={"authorization": f"Bearer {made['key']}"})
        assert virtual.status_code == 403 and virtual.json()["error"]["code"] == "forbidden"
    settings = make_settings(tmp_path / "open")  # no master key: nobody may read the key list
    with GatewayServer(settings, model_config=model_config(models(upstream))) as open_gw, open_gw.client() as c:
        refused = c.get("/api/keys")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "master_key_required"


def test_keys_spend_with_database_url(tmp_path: Path, upstream: FakeUpstream, postgres_url: str) -> None:
    """Keys and spend come from PostgreSQL: what this instance shipped there."""
    settings = make_settings(tmp_path, master_key=MASTER, database_url=postgres_url)
    with GatewayServer(settings, model_config=model_config(models(upstream))) as gw:
        made = as_master(gw, "POST", "/admin/keys", json={"owner": "erin", "budget_daily_usd": 2})
        chat(gw, made["key"])
        chat(gw, made["key"], "private-fake")
        deadline = time.monotonic() + 30
        while True:  # shipping to PostgreSQL is asynchronous: ask until it has arrived
            (erin,) = as_master(gw, "GET", "/api/keys")["data"]
            if erin["spend_today"]["calls"] == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert erin["owner"] == "erin" and erin["budget_daily_usd"] == 2
        assert erin["spend_today"]["calls"] == 2 and erin["spend_today"]["unpriced_calls"] == 1
        assert erin["spend_today"]["usd"] > 0
