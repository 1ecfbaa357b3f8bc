"""LiteLLM-style configs from tests/litellm_configs/, started unchanged with `llm-scope serve` (a real process
on a loopback port, calling the fake upstream and the fake Langfuse) and checked with `check-config`.

Each started server carries many assertions: starting one costs more than a call.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

from llm_scope.model_config import parse_config, parse_config_file
from tests.conftest import UPSTREAM_KEY
from tests.fakes.otlp_receiver import start_otlp_receiver
from tests.fakes.serving import free_port
from tests.fakes.upstream import FakeUpstream
from tests.gateway_server import GatewayServer, make_settings

CONFIGS = Path(__file__).parent / "litellm_configs"
EVERY_KEY = CONFIGS / "every_key_family.yaml"
LLM_SCOPE = str(Path(sys.executable).parent / "llm-scope")
MASTER = "sk-litellm-master-0123456789"
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def bare_env(**extra: str) -> dict[str, str]:
    """A bare shell: PATH and HOME only, no provider keys, nothing from the developer's environment."""
    return {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": "/tmp", **extra}


@contextmanager
def serve(tmp_path: Path, config: Path, env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """`llm-scope serve --config <file>` until /ready answers; yields its URL and its log file."""
    port, log_path = free_port(), tmp_path / "gateway.log"
    args = [LLM_SCOPE, "serve", "--config", str(config), "--port", str(port), "--data-dir", str(tmp_path / "data")]
    with log_path.open("w") as log:
        proc = subprocess.Popen(args, cwd=tmp_path, env={**env, "METRICS_PORT": "0"}, stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 40
            while True:
                assert proc.poll() is None, f"gateway exited:\n{log_path.read_text()}"
                try:
                    if httpx.get(url + "/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"gateway not ready:\n{log_path.read_text()}"
                time.sleep(0.05)
            yield url, log_path
        finally:
            proc.terminate()
            proc.wait(timeout=15)


def check_config(tmp_path: Path, config: Path, *flags: str, **env: str) -> subprocess.CompletedProcess[str]:
    args = [LLM_SCOPE, "check-config", "--config", str(config), *flags]
    return subprocess.run(args, cwd=tmp_path, env=bare_env(**env), capture_output=True, text=True, timeout=60)


def test_every_key_family_with_its_variables_set(tmp_path: Path, upstream: FakeUpstream) -> None:
    upstream.reset()
    receiver = start_otlp_receiver()
    env = bare_env(
        FAKE_OPENAI_API_BASE=upstream.openai_base_url,
        FAKE_OPENAI_KEY=UPSTREAM_KEY,
        FAKE_ANTHROPIC_API_BASE=upstream.url,
        OPENAI_API_BASE=upstream.openai_base_url,  # LiteLLM's fallback for the entry with only a model_name
        OPENAI_API_KEY=UPSTREAM_KEY,
        LITELLM_MASTER_KEY=MASTER,
        DATABASE_URL="postgresql://user:pw-not-logged@db.invalid/litellm",
        LANGFUSE_PUBLIC_KEY="pk-lf-corpus",
        LANGFUSE_SECRET_KEY="sk-lf-corpus-secret",
        FAKE_LANGFUSE_HOST=receiver.url,  # reaches LANGFUSE_HOST through environment_variables
    )
    try:
        with serve(tmp_path, EVERY_KEY, env) as (url, log_path), httpx.Client(base_url=url, timeout=30) as client:
            auth = {"Authorization": f"Bearer {MASTER}"}
            # general_settings.master_key protects the gateway
            assert client.post("/v1/chat/completions", json={"model": "gpt-4o", **CHAT}).status_code == 401
            wrong = client.post("/v1/chat/completions", json={"model": "gpt-4o", **CHAT}, headers={"x-api-key": "no"})
            assert wrong.status_code == 401
            ok = client.post("/v1/chat/completions", json={"model": "gpt-4o", **CHAT}, headers=auth)
            assert ok.status_code == 200, ok.text
            assert upstream.last_request().headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
            # model_group_alias, and the entry with only a model_name
            for name in ("gpt-4", "gpt-3.5-turbo"):
                answer = client.post("/v1/chat/completions", json={"model": name, **CHAT}, headers=auth)
                assert answer.status_code == 200, (name, answer.text)
            models = {m["id"] for m in client.get("/v1/models", headers=auth).json()["data"]}
            assert {"gpt-4o", "gpt-4", "gpt-3.5-turbo", "claude-sonnet"} <= models
            # the deployment whose key is unset answers a clear error in each API's own shape
            chat = client.post("/v1/chat/completions", json={"model": "claude-sonnet", **CHAT}, headers=auth)
            assert chat.status_code == 503
            error = chat.json()["error"]
            assert error["code"] == "deployment_unavailable" and "ANTHROPIC_KEY_NOT_SET" in error["message"]
            messages = client.post(
                "/v1/messages", json={"model": "claude-sonnet", "max_tokens": 10, **CHAT}, headers=auth
            )
            assert messages.status_code == 503
            body = messages.json()
            assert body["type"] == "error" and body["error"]["type"] == "api_error"
            assert "ANTHROPIC_KEY_NOT_SET" in body["error"]["message"]
            ready = client.get("/ready").json()
            assert ready["status"] == "ready"
            assert [d["model_name"] for d in ready["unavailable_deployments"]] == ["claude-sonnet"]
            # success_callback: ["langfuse"] exports the call to Langfuse
            trace_id = ok.headers["x-trace-id"]
            deadline = time.monotonic() + 20
            while not receiver.spans_for_trace(trace_id):
                assert time.monotonic() < deadline, "the call never reached the fake Langfuse"
                time.sleep(0.1)
        log = log_path.read_text()
    finally:
        receiver.stop()
    for named in (
        "ignored: litellm_settings.cache",
        "ignored: litellm_settings.context_window_fallbacks",
        "typo: litellm_settings.fallback — did you mean 'fallbacks'?",
        "typo: model_list[2] (gpt-4o-backup).litellm_params.api_bse — did you mean 'api_base'?",
        "ignored: model_list[0] (gpt-4o).litellm_params.rpm",
        "ignored: model_list[0] (gpt-4o).model_info — mode",
        "ignored: router_settings.redis_host",
        "ignored: general_settings.alerting",
        "ignored: guardrails",
        "different: litellm_settings.callbacks[0]",
        "different: model_list[3] (gpt-3.5-turbo) — has no litellm_params",
        "unavailable: model_list[1] (claude-sonnet).litellm_params.api_key",
    ):
        assert f"{EVERY_KEY}: {named}" in log, (named, log)
        assert log.count(f"{EVERY_KEY}: {named}") == 1, named  # named once
    for secret in (MASTER, UPSTREAM_KEY, "pw-not-logged", "sk-lf-corpus-secret"):
        assert secret not in log


def test_every_key_family_in_a_bare_shell(tmp_path: Path) -> None:
    with serve(tmp_path, EVERY_KEY, bare_env()) as (url, log_path), httpx.Client(base_url=url, timeout=30) as client:
        ready = client.get("/ready").json()
        unavailable = {d["model_name"]: d["reason"] for d in ready["unavailable_deployments"]}
        assert set(unavailable) == {"gpt-4o", "gpt-4o-backup", "claude-sonnet"}
        assert "FAKE_OPENAI_API_BASE" in unavailable["gpt-4o"]
        answer = client.post("/v1/chat/completions", json={"model": "gpt-4", **CHAT})  # alias of an unavailable name
        assert answer.status_code == 503 and "FAKE_OPENAI" in answer.json()["error"]["message"]
        # LITELLM_MASTER_KEY unset: no master key, so the loopback gateway is open, as LiteLLM Proxy's would be
        assert client.post("/v1/chat/completions", json={"model": "mock-gpt", **CHAT}).status_code == 200
    log = log_path.read_text()
    assert "general_settings.master_key — refers to environment variable LITELLM_MASTER_KEY, which is not set" in log
    assert "Traceback" not in log

    typos = check_config(tmp_path, EVERY_KEY)
    assert typos.returncode == 2  # api_bse, fallback: serve starts (above), check-config fails
    assert "typo: litellm_settings.fallback — did you mean 'fallbacks'?" in typos.stderr
    assert "unavailable: model_list[0] (gpt-4o).litellm_params.api_base" in typos.stderr
    assert "claude-sonnet" in typos.stdout and "(unavailable)" in typos.stdout
    unset_only = CONFIGS / "fallbacks_and_strategies.yaml"
    plain = check_config(tmp_path, unset_only)
    assert plain.returncode == 0, plain.stderr  # unset variables are warnings
    assert "unavailable: model_list[0] (primary).litellm_params.api_base" in plain.stderr
    assert check_config(tmp_path, unset_only, "--strict").returncode == 1  # for CI: any warning fails
    clean = tmp_path / "clean.yaml"
    clean.write_text("model_list:\n  - model_name: m\n    litellm_params: {model: openai/gpt-4o, api_key: k}\n")
    assert check_config(tmp_path, clean, "--strict").returncode == 0
    typo = check_config(tmp_path, CONFIGS / "unknown_provider.yaml")
    assert typo.returncode == 2
    assert "invalid: model_list[0] (gpt-4o).litellm_params.model" in typo.stderr
    assert "unknown provider 'opnai'" in typo.stderr and "did you mean 'openai/gpt-4o'?" in typo.stderr


def test_unavailable_deployments_behind_fallbacks(tmp_path: Path, upstream: FakeUpstream) -> None:
    upstream.reset()
    environ = {
        "FAKE_OPENAI_API_BASE": upstream.openai_base_url,
        "FAKE_OPENAI_KEY": UPSTREAM_KEY,
        "FAKE_ANTHROPIC_API_BASE": upstream.url,
    }
    config = parse_config_file(CONFIGS / "fallbacks_and_strategies.yaml", environ)
    assert config.policy.routing_strategy == "latency-based-routing"
    with GatewayServer(make_settings(tmp_path), model_config=config) as server, server.client() as client:
        for name in ("primary", "shared", "shared", "shared", "lonely", "lonely-alias"):
            answer = client.post("/v1/chat/completions", json={"model": name, **CHAT})
            assert answer.status_code == 200, (name, answer.text)
        # every call reached the upstream with a key that was set, never with a missing one
        sent = upstream.requests
        assert len(sent) == 6 and all(r.headers["authorization"] == f"Bearer {UPSTREAM_KEY}" for r in sent)
        models = {m["id"] for m in client.get("/v1/models").json()["data"]}
        assert "lonely" in models and "lonely-alias" not in models  # a hidden alias is served, not listed
        ready = client.get("/ready").json()
        assert sorted(d["model_name"] for d in ready["unavailable_deployments"]) == ["lonely", "primary", "shared"]


def test_least_busy_sends_calls_past_a_busy_deployment(tmp_path: Path, upstream: FakeUpstream) -> None:
    upstream.reset()
    pair = [
        {
            "model_name": "pair",
            "litellm_params": {"model": f"openai/{m}", "api_base": upstream.openai_base_url, "api_key": UPSTREAM_KEY},
        }
        for m in ("model-a", "model-b")
    ]
    config = parse_config({"model_list": pair, "router_settings": {"routing_strategy": "least-busy"}}, {}, source="t")
    with GatewayServer(make_settings(tmp_path), model_config=config) as server, server.client() as client:
        slow = {"model": "pair", "messages": [{"role": "user", "content": "FAKE_SLOW=1.5"}]}
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(client.post, "/v1/chat/completions", json=slow)
            upstream.wait_for_requests(1)
            busy = upstream.requests[0].json["model"]
            for _ in range(3):  # round robin would send one of these to the busy deployment
                assert client.post("/v1/chat/completions", json={"model": "pair", **CHAT}).status_code == 200
            assert held.result().status_code == 200
        others = [r.json["model"] for r in upstream.requests[1:4]]
        assert others == [{"model-a": "model-b", "model-b": "model-a"}[busy]] * 3
        # once nothing is in flight, the two share calls again
        for _ in range(2):
            assert client.post("/v1/chat/completions", json={"model": "pair", **CHAT}).status_code == 200
        assert {r.json["model"] for r in upstream.requests[4:]} == {"model-a", "model-b"}
