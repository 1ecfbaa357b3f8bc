"""Virtual keys end to end: admin API and CLI, owners on traces, model allow-lists, budgets, rate limits,
and shared limits in a real Redis server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import upstream_models
from tests.fakes.serving import free_port
from tests.fakes.upstream import FakeUpstream
from tests.gateway_server import GatewayServer, make_settings, model_config

MASTER = "sk-master-test-0123456789abcdef"


def gateway(tmp_path: Path, upstream: FakeUpstream, **settings: Any) -> GatewayServer:
    return GatewayServer(
        make_settings(tmp_path, master_key=MASTER, **settings), model_config=model_config(upstream_models(upstream))
    )


def create_key(gw: GatewayServer, **fields: Any) -> dict[str, Any]:
    r = httpx.post(gw.url + "/admin/keys", headers={"Authorization": f"Bearer {MASTER}"}, json=fields)
    assert r.status_code == 201, r.text
    return dict(r.json())


def ask(gw: GatewayServer, key: str, model: str = "gpt-fake") -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
    )


def test_keys_lifecycle_and_owner_on_traces(tmp_path: Path, upstream: FakeUpstream) -> None:
    with gateway(tmp_path, upstream) as gw:
        created = create_key(gw, owner="alice", models=["gpt-fake"])
        key = created["key"]
        assert key.startswith("sk-ls-") and created["owner"] == "alice"
        listed = httpx.get(gw.url + "/admin/keys", headers={"Authorization": f"Bearer {MASTER}"}).json()["data"]
        assert [k["id"] for k in listed] == [created["id"]] and key not in json.dumps(listed)
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-fake", messages=[{"role": "user", "content": "x"}]
        )
        trace = httpx.get(
            gw.url + f"/api/traces/{raw.headers['x-trace-id']}", headers={"Authorization": f"Bearer {MASTER}"}
        ).json()
        assert trace["user_id"] == "alice" and trace["key_id"] == created["id"]
        with pytest.raises(openai.PermissionDeniedError):
            client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "x"}])
        # A virtual key calls models; it cannot read other people's traces or manage keys.
        assert httpx.get(gw.url + "/api/traces", headers={"Authorization": f"Bearer {key}"}).status_code == 403
        assert (
            httpx.post(
                gw.url + "/admin/keys", headers={"Authorization": f"Bearer {key}"}, json={"owner": "x"}
            ).status_code
            == 403
        )
        assert ask(gw, "sk-ls-not-a-real-key").status_code == 401
        assert (
            httpx.delete(
                gw.url + f"/admin/keys/{created['id']}", headers={"Authorization": f"Bearer {MASTER}"}
            ).status_code
            == 200
        )
        assert ask(gw, key).status_code == 401
        assert httpx.get(gw.url + "/health").status_code == 200  # stays open


def test_rate_limit_is_429_with_retry_after_in_both_shapes(tmp_path: Path, upstream: FakeUpstream) -> None:
    with gateway(tmp_path, upstream) as gw:
        key = create_key(gw, owner="bob", rpm=2)["key"]
        assert [ask(gw, key).status_code for _ in range(2)] == [200, 200]
        limited = ask(gw, key)
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limit_exceeded"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        with pytest.raises(anthropic.RateLimitError) as info:
            anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0).messages.create(
                model="claude-fake", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        assert info.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


def ask_until(gw: GatewayServer, key: str, status: int, what: str, timeout: float = 20.0) -> httpx.Response:
    """Ask until the answer has `status`. Spend and token counts are recorded just after each response, so
    the call right after may still pass; asking again (never sleeping a guess) is what a loaded machine needs."""
    deadline = time.monotonic() + timeout
    while (response := ask(gw, key)).status_code != status:
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
    return response


def test_budget_uses_the_traced_cost(tmp_path: Path, upstream: FakeUpstream) -> None:
    with gateway(tmp_path, upstream) as gw:
        key = create_key(gw, owner="carol", budget_daily_usd=0.0000001)["key"]
        first = ask(gw, key)
        assert first.status_code == 200
        over = ask_until(gw, key, 429, "the budget applies")
        assert over.json()["error"]["code"] == "budget_exceeded"
        assert int(over.headers["retry-after"]) > 0
        trace = httpx.get(
            gw.url + f"/api/traces/{first.headers['x-trace-id']}", headers={"Authorization": f"Bearer {MASTER}"}
        ).json()
        assert trace["cost_total"] > 0.0000001
    # The budget survives a restart: spend is read back from the local store.
    with gateway(tmp_path, upstream) as gw:
        assert ask(gw, key).status_code == 429


def test_token_limit(tmp_path: Path, upstream: FakeUpstream) -> None:
    with gateway(tmp_path, upstream) as gw:
        key = create_key(gw, owner="dan", tpm=10)["key"]
        assert ask(gw, key).status_code == 200  # uses more than 10 tokens
        limited = ask_until(gw, key, 429, "the token limit applies")
        assert limited.json()["error"]["message"].startswith("Rate limit of 10 tokens per minute")


def test_cli_creates_lists_and_revokes(tmp_path: Path, upstream: FakeUpstream) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LLM_SCOPE_DATA_DIR": str(tmp_path / "data")}
    run = [sys.executable, "-m", "llm_scope", "keys"]
    out = subprocess.run(
        [*run, "create", "--owner", "team-x", "--rpm", "5", "--models", "gpt-fake"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    created = json.loads(out.stdout)
    assert created["key"].startswith("sk-ls-") and "not shown again" in out.stderr
    listed = subprocess.run([*run, "list"], env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert created["id"] in listed.stdout and created["key"] not in listed.stdout and "rpm=5" in listed.stdout
    with gateway(tmp_path, upstream) as gw:
        assert ask(gw, created["key"]).status_code == 200
        subprocess.run([*run, "revoke", created["id"]], env=env, cwd=tmp_path, check=True, capture_output=True)
        gw.app.state.keys.cache_ttl = 0  # the running gateway re-reads the store (normally within 5 s)
        assert ask(gw, created["key"]).status_code == 401


def test_admin_api_validates(tmp_path: Path, upstream: FakeUpstream) -> None:
    with gateway(tmp_path, upstream) as gw:
        headers = {"Authorization": f"Bearer {MASTER}"}
        for body in (
            {},
            {"owner": ""},
            {"owner": "x", "rpm": -1},
            {"owner": "x", "models": "all"},
            {"owner": "x", "budget_daily_usd": "lots"},
        ):
            r = httpx.post(gw.url + "/admin/keys", headers=headers, json=body)
            assert r.status_code == 400, body
        assert httpx.delete(gw.url + "/admin/keys/key_nope", headers=headers).status_code == 404
        assert httpx.get(gw.url + "/admin/keys").status_code == 401


# --- shared limits in Redis ----------------------------------------------------------------------------------

REDIS = shutil.which("redis-server")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    if REDIS is None:
        pytest.skip("redis-server not installed (make test installs it with apt where it can)")
    port = free_port()
    state: dict[str, Any] = {"port": port}

    def start() -> None:
        state["proc"] = subprocess.Popen(
            [
                REDIS,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(tmp_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        import socket

        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop() -> None:
        state["proc"].terminate()
        state["proc"].wait(timeout=10)

    state["start"], state["stop"] = start, stop
    start()
    yield state
    if state["proc"].poll() is None:
        stop()


def test_two_gateways_share_one_limit_through_redis(
    tmp_path: Path, upstream: FakeUpstream, redis_server: dict[str, Any]
) -> None:
    url = f"redis://127.0.0.1:{redis_server['port']}/0"
    with gateway(tmp_path, upstream, redis_url=url) as a, gateway(tmp_path, upstream, redis_url=url) as b:
        key = create_key(a, owner="shared", rpm=3)["key"]
        while time.time() % 60 > 55:  # the four calls must fall in one rate window (windows turn on the minute)
            time.sleep(0.2)
        statuses = [ask(gw, key).status_code for gw in (a, b, a, b)]
        assert statuses == [200, 200, 200, 429]
        # Redis goes away: calls keep working (limits fail open) ...
        redis_server["stop"]()
        other = create_key(a, owner="during-outage", rpm=1)["key"]
        assert ask(a, other).status_code == 200 and ask(b, other).status_code == 200
        # ... and when it is back, limits apply again.
        redis_server["start"]()
        fresh = create_key(a, owner="after", rpm=1)["key"]
        assert ask(a, fresh).status_code == 200
        # Once the gateway has reconnected, the second call in the window is refused.
        ask_until(a, fresh, 429, "limits apply again once Redis is back")


def test_owner_beats_body_hints_and_models_list_is_filtered(tmp_path: Path, upstream: FakeUpstream) -> None:
    with gateway(tmp_path, upstream) as gw:
        created = create_key(gw, owner="carol", models=["gpt-fake"])
        r = httpx.post(
            gw.url + "/v1/messages",
            headers={"x-api-key": created["key"]},
            json={
                "model": "gpt-fake",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "metadata": {"user_id": '{"device_id": "d1", "account_uuid": "", "session_id": "s1"}'},
            },
        )
        assert r.status_code == 200, r.text
        trace = httpx.get(
            gw.url + f"/api/traces/{r.headers['x-trace-id']}", headers={"Authorization": f"Bearer {MASTER}"}
        ).json()
        assert trace["user_id"] == "carol" and trace["session_id"] == "s1"
        # An explicit X-User-ID (set in a tool's config by whoever hands out the key) beats the owner.
        named = httpx.post(
            gw.url + "/v1/chat/completions",
            headers={"x-api-key": created["key"], "X-User-ID": "dave"},
            json={"model": "gpt-fake", "messages": [{"role": "user", "content": "x"}], "user": "body-user"},
        )
        assert (
            httpx.get(
                gw.url + f"/api/traces/{named.headers['x-trace-id']}", headers={"Authorization": f"Bearer {MASTER}"}
            ).json()["user_id"]
            == "dave"
        )
        listed = httpx.get(gw.url + "/v1/models", headers={"Authorization": f"Bearer {created['key']}"}).json()
        assert [m["id"] for m in listed["data"]] == ["gpt-fake"]


def test_revoked_key_fails_even_on_an_open_gateway(tmp_path: Path, upstream: FakeUpstream) -> None:
    settings = make_settings(tmp_path)  # no master key: the gateway is open on loopback
    with GatewayServer(settings, model_config=model_config(upstream_models(upstream))) as gw:
        key, plaintext = gw.app.state.keys.create("frank")
        assert ask(gw, plaintext).status_code == 200
        gw.app.state.keys.revoke(key.id)
        assert ask(gw, plaintext).status_code == 401
        assert ask(gw, "any-other-key").status_code == 200
