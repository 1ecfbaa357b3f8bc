"""Retries, fallbacks, load balancing, cooldowns and overload, against real loopback upstreams."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_scope.model_config import parse_config
from tests.conftest import UPSTREAM_KEY
from tests.fakes.upstream import FakeUpstream
from tests.gateway_server import GatewayServer, make_settings

DEAD = "http://127.0.0.1:9/v1"


def gateway_with(
    tmp_path: Path, models: list[dict[str, Any]], router: dict[str, Any] | None = None, **settings: Any
) -> GatewayServer:
    config = parse_config({"model_list": models, "router_settings": router or {"retry_after": 0.01}}, {}, source="test")
    return GatewayServer(make_settings(tmp_path, **settings), model_config=config)


def entry(name: str, base: str, key: str = UPSTREAM_KEY) -> dict[str, Any]:
    return {"model_name": name, "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": base, "api_key": key}}


def ask(gw: GatewayServer, model: str, text: str = "hi", **body: Any) -> httpx.Response:
    with gw.client() as client:
        return client.post(
            "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": text}], **body}
        )


def test_retry_after_a_503_then_success(tmp_path: Path, upstream: FakeUpstream) -> None:
    upstream.reset()
    with gateway_with(tmp_path, [entry("m", upstream.openai_base_url)]) as gw:
        upstream.set_mode("FAKE_ERROR_503", times=1)
        r = ask(gw, "m")
        assert r.status_code == 200
        assert len(upstream.requests) == 2
        trace = gw.client().get(f"/api/traces/{r.headers['x-trace-id']}").json()
    assert trace["metadata"]["gateway_attempts"] == 2


def test_client_errors_are_not_retried(tmp_path: Path, upstream: FakeUpstream) -> None:
    upstream.reset()
    with gateway_with(tmp_path, [entry("m", upstream.openai_base_url)]) as gw:
        assert ask(gw, "m", "FAKE_ERROR_400").status_code == 400
        assert len(upstream.requests) == 1


def test_retries_give_up_with_the_last_error(tmp_path: Path, upstream: FakeUpstream) -> None:
    upstream.reset()
    with gateway_with(tmp_path, [entry("m", upstream.openai_base_url)], {"num_retries": 1, "retry_after": 0.01}) as gw:
        r = ask(gw, "m", "FAKE_ERROR_500")
        assert r.status_code == 502 and len(upstream.requests) == 2


def test_no_retry_once_a_stream_has_started(tmp_path: Path, upstream: FakeUpstream) -> None:
    upstream.reset()
    with gateway_with(tmp_path, [entry("m", upstream.openai_base_url)]) as gw:
        r = ask(gw, "m", "FAKE_DROP", stream=True)
        assert r.status_code == 200 and '"error"' in r.text
        assert len(upstream.requests) == 1


def test_dead_deployment_is_skipped_then_cooled_down(tmp_path: Path, upstream: FakeUpstream) -> None:
    models = [entry("lb", DEAD), entry("lb", upstream.openai_base_url)]
    router = {"allowed_fails": 2, "cooldown_time": 60, "retry_after": 0.01}
    with gateway_with(tmp_path, models, router) as gw:
        assert [ask(gw, "lb").status_code for _ in range(10)] == [200] * 10
        metrics = gw.client().get("/metrics").text
    failures = [
        line
        for line in metrics.splitlines()
        if line.startswith("llm_scope_upstream_failures_total{") and 'deployment="lb"' in line
    ]
    assert len(failures) == 1 and float(failures[0].rsplit(" ", 1)[1]) == 2  # then it was left alone


def test_fallback_to_another_model_name(tmp_path: Path, upstream: FakeUpstream) -> None:
    models = [entry("primary", DEAD), entry("backup", upstream.openai_base_url)]
    router = {"num_retries": 0, "fallbacks": [{"primary": ["backup"]}], "retry_after": 0.01}
    with gateway_with(tmp_path, models, router) as gw:
        r = ask(gw, "primary")
        assert r.status_code == 200
        trace = gw.client().get(f"/api/traces/{r.headers['x-trace-id']}").json()
    assert trace["metadata"]["fallback_model"] == "backup" and trace["requested_model"] == "primary"


def test_deployments_of_one_name_share_the_load(tmp_path: Path, upstream: FakeUpstream) -> None:
    upstream.reset()
    models = [
        entry("lb", upstream.openai_base_url, "sk-key-a-0000000000000000"),
        entry("lb", upstream.openai_base_url, "sk-key-b-0000000000000000"),
    ]
    with gateway_with(tmp_path, models) as gw:
        for _ in range(6):
            assert ask(gw, "lb").status_code == 200
    keys = [r.headers["authorization"][-25:] for r in upstream.requests]
    assert keys.count("sk-key-a-0000000000000000") == 3 and keys.count("sk-key-b-0000000000000000") == 3


def test_overload_beyond_the_queue_is_503_with_retry_after(tmp_path: Path, upstream: FakeUpstream) -> None:
    with gateway_with(tmp_path, [entry("m", upstream.openai_base_url)], max_concurrency=1, max_queue=1) as gw:
        results: list[httpx.Response] = []

        def call() -> None:
            results.append(ask(gw, "m", "FAKE_SLOW=1"))

        threads = [threading.Thread(target=call) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 200, 503]
    rejected = next(r for r in results if r.status_code == 503)
    assert rejected.headers["retry-after"] == "1" and rejected.json()["error"]["code"] == "overloaded"


@pytest.mark.parametrize("bad", [{"num_retries": -1}, {"fallbacks": "x"}, {"fallbacks": [{"a": 3}]}])
def test_invalid_router_settings_fail_at_start(bad: dict[str, Any]) -> None:
    from llm_scope.model_config import ConfigError

    with pytest.raises(ConfigError, match="test"):
        parse_config({"model_list": [], "router_settings": bad}, {}, source="test")


def test_fallback_to_a_missing_model_fails_at_start() -> None:
    from llm_scope.model_config import ConfigError

    with pytest.raises(ConfigError, match="no model_list entry serves"):
        parse_config(
            {"model_list": [entry("a", DEAD)], "router_settings": {"fallbacks": [{"a": ["ghost"]}]}}, {}, source="test"
        )
