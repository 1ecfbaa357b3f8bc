"""A local store that cannot write (a full disk, a read-only or locked file): calls keep succeeding, /ready
says why, and every trace is stored once the store can write again."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

from tests.conftest import upstream_models
from tests.fakes.upstream import FakeUpstream
from tests.gateway_server import GatewayServer, make_settings, model_config
from tests.polling import wait_until
from tests.tracing.test_handoff import stored_ids


def ready(gw: GatewayServer) -> httpx.Response:
    return httpx.get(gw.url + "/ready", timeout=10)


def call(gw: GatewayServer, text: str) -> str:
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": "gpt-fake", "messages": [{"role": "user", "content": text}]},
        timeout=30,
    )
    assert r.status_code == 200
    return str(r.headers["x-trace-id"])


def test_ready_names_a_store_that_cannot_write_and_recovers(tmp_path: Path, upstream: FakeUpstream) -> None:
    db = tmp_path / "data" / "llm-scope.db"
    with GatewayServer(make_settings(tmp_path), model_config=model_config(upstream_models(upstream))) as gw:
        first = call(gw, "before")
        wait_until(lambda: first in stored_ids(db), "the helper has opened the store and writes to it")
        assert ready(gw).status_code == 200
        # Another writer holds the database: every write the helper tries fails after its busy timeout,
        # as it would on a full disk, and is retried.
        blocker = sqlite3.connect(db, isolation_level=None, timeout=30)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            during = call(gw, "while the store is stuck")
            wait_until(lambda: ready(gw).status_code == 503, "/ready reports the store", timeout=60)
            reasons = ready(gw).json()["reasons"]
            assert any("local trace store cannot write" in reason for reason in reasons), reasons
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        wait_until(lambda: ready(gw).status_code == 200, "/ready recovers once the store writes", timeout=60)
        assert during in stored_ids(db)
