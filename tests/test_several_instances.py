"""Two real `llm-scope serve` processes on one PostgreSQL behave as one gateway.

Keys made on one work on the other, each one's dashboard API lists both one's calls, a budget crossed through
one is refused by both, and PostgreSQL stopped under calls fails none of them: the traces wait in each
instance's local store and arrive exactly once when it is back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import upstream_models
from tests.fakes.upstream import FakeUpstream
from tests.gateway_server import spawn_gateway
from tests.postgres import PostgresCluster, postgres_bin_dir

MASTER = "sk-master-several-0123456789"
ADMIN = {"Authorization": f"Bearer {MASTER}"}
BOUND = 5.0  # documented: a key change reaches every instance within this (tests allow twice as long)


@contextmanager
def instances(tmp_path: Path, upstream: FakeUpstream, database_url: str) -> Iterator[tuple[str, str]]:
    procs: list[subprocess.Popen[bytes]] = []
    urls = []
    try:
        for name in ("a", "b"):
            home = tmp_path / name
            home.mkdir()
            env = {"DATABASE_URL": database_url, "LLM_SCOPE_MASTER_KEY": MASTER}
            proc, url = spawn_gateway(home, upstream_models(upstream), env=env)
            procs.append(proc)
            urls.append(url)
        yield urls[0], urls[1]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def chat(url: str, key: str = MASTER, text: str = "hi", model: str = "gpt-fake") -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": text}]},
        timeout=30,
    )


def cli(database_url: str, *args: str) -> list[str]:
    env = {"PATH": os.environ["PATH"], "HOME": "/tmp", "DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-m", "llm_scope", *args], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.splitlines()


def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        time.sleep(0.1)


def listed(url: str) -> set[str]:
    page = httpx.get(url + "/api/traces", params={"limit": 500}, headers=ADMIN, timeout=30).json()
    return {row["trace_id"] for row in page["data"]}


def test_keys_traces_and_budgets_are_shared(tmp_path: Path, upstream: FakeUpstream, postgres_url: str) -> None:
    with instances(tmp_path, upstream, postgres_url) as (a, b):
        made = httpx.post(a + "/admin/keys", headers=ADMIN, json={"owner": "ann"}, timeout=30)
        assert made.status_code == 201
        key, key_id = made.json()["key"], made.json()["id"]
        assert chat(a, key).status_code == 200  # at once where it was made
        eventually(lambda: chat(b, key).status_code == 200, 2 * BOUND, "a key made on A works on B")
        assert httpx.delete(f"{a}/admin/keys/{key_id}", headers=ADMIN, timeout=30).status_code == 200
        assert chat(a, key).status_code == 401
        eventually(lambda: chat(b, key).status_code == 401, 2 * BOUND, "a key revoked on A is refused by B")

        ids = {chat(url, text=f"call {i}").headers["x-trace-id"] for i, url in enumerate([a, b] * 3)}
        for url in (a, b):
            eventually(lambda url=url: ids <= listed(url), 10, "each instance lists both instances' calls")  # type: ignore[misc]
        # The CLI on any machine with DATABASE_URL reads the shared store too.
        assert ids <= {json.loads(line)["trace_id"] for line in cli(postgres_url, "traces", "--json", "--limit", "500")}
        assert any(key_id in line for line in cli(postgres_url, "keys", "list", "--all"))
        # Every call so far (the key probes too) is shipped: both see one total, the sum of both instances'.
        counted = httpx.get(a + "/api/traces", headers=ADMIN, timeout=30).json()["total"]
        for url in (a, b):
            assert httpx.get(url + "/api/usage", headers=ADMIN, timeout=30).json()["total"]["calls"] == counted
            # The dashboard's own aggregates read the shared store too.
            days = httpx.get(url + "/api/stats", headers=ADMIN, timeout=30).json()
            assert sum(row["calls"] for row in days["by_day_user"]) == counted

        # A budget of one and a half calls: each instance alone has spent one call, so only their sum refuses.
        probe = chat(a).headers["x-trace-id"]
        cost = httpx.get(f"{a}/api/traces/{probe}", headers=ADMIN, timeout=30).json()["cost_total"]
        assert cost > 0
        tight = httpx.post(
            a + "/admin/keys", headers=ADMIN, json={"owner": "bob", "budget_daily_usd": 1.5 * cost}, timeout=30
        ).json()["key"]
        eventually(lambda: chat(b, tight, model="no-such-model").status_code != 401, 2 * BOUND, "B knows the key")
        assert chat(a, tight).status_code == 200
        assert chat(b, tight).status_code == 200

        def refused_everywhere() -> bool:
            # An unknown model: refused for the budget (checked first) or else not found, never spending.
            answers = [chat(url, tight, model="no-such-model") for url in (a, b)]
            return all(r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded" for r in answers)

        eventually(refused_everywhere, 10, "a budget spent through A and B is refused by both")


@pytest.fixture
def own_cluster() -> Iterator[PostgresCluster]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL binaries not installed (scripts/system-deps.sh installs Debian's postgresql)")
    cluster = PostgresCluster(bin_dir)
    yield cluster
    cluster.destroy()


def ready(url: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(url + "/ready", timeout=10).json()
    return body


def test_postgres_outage_fails_no_call_and_loses_no_trace(
    tmp_path: Path, upstream: FakeUpstream, own_cluster: PostgresCluster
) -> None:
    url = own_cluster.new_database()
    with instances(tmp_path, upstream, url) as (a, b):
        before = [chat(gw, text=f"before {i}") for i, gw in enumerate([a, b] * 5)]
        own_cluster.stop()
        during = [chat(gw, text=f"during {i}") for i, gw in enumerate([a, b] * 25)]
        assert [r.status_code for r in before + during] == [200] * 60  # no call failed
        own = during[0].headers["x-trace-id"]  # made on A: A still shows it, from its local store
        assert httpx.get(f"{a}/api/traces/{own}", headers=ADMIN, timeout=30).status_code == 200
        listing = httpx.get(a + "/api/traces", headers=ADMIN, timeout=30)
        assert listing.status_code == 503 and listing.json()["error"]["code"] == "trace_store_unavailable"
        eventually(lambda: ready(a)["postgres"]["traces_waiting"] > 0, 10, "/ready says what waits")
        assert ready(a)["status"] == "ready"  # calls succeed: no reason to leave the load balancer
        own_cluster.start()
        ids = {r.headers["x-trace-id"] for r in before + during}
        assert len(ids) == 60

        def stored() -> list[tuple[object, ...]]:
            return own_cluster.query(url, "SELECT trace_id, COUNT(*) FROM traces GROUP BY trace_id")

        eventually(lambda: {row[0] for row in stored()} >= ids, 60, "every trace arrives after the outage")
        eventually(lambda: ready(a)["postgres"]["traces_waiting"] == 0, 10, "the backlog drains")
        rows = stored()
        assert len(rows) == 60 and {row[1] for row in rows} == {1}  # each exactly once, nothing else


def test_kill_9_while_postgres_is_down_replays_the_local_store_once(
    tmp_path: Path, upstream: FakeUpstream, own_cluster: PostgresCluster
) -> None:
    url = own_cluster.new_database()
    env = {"DATABASE_URL": url, "LLM_SCOPE_MASTER_KEY": MASTER}
    proc, a = spawn_gateway(tmp_path, upstream_models(upstream), env=env)
    try:
        shipped = {chat(a, text=f"shipped {i}").headers["x-trace-id"] for i in range(5)}
        eventually(lambda: ready(a)["postgres"]["traces_waiting"] == 0 and len(listed(a)) == 5, 10, "shipped")
        own_cluster.stop()
        waiting = {chat(a, text=f"waiting {i}").headers["x-trace-id"] for i in range(20)}
        eventually(lambda: ready(a)["postgres"]["traces_waiting"] == 20, 10, "stored locally, waiting")
    finally:
        proc.kill()  # SIGKILL: no shutdown, no last shipping attempt
        proc.wait(timeout=10)
    own_cluster.start()
    proc, a = spawn_gateway(tmp_path, upstream_models(upstream), env=env)
    try:
        eventually(lambda: listed(a) >= shipped | waiting, 30, "the local store is replayed after the restart")
        counts = own_cluster.query(url, "SELECT trace_id, COUNT(*) FROM traces GROUP BY trace_id")
        assert len(counts) == 25 and {row[1] for row in counts} == {1}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_workers_of_one_instance_ship_one_local_store_once(
    tmp_path: Path, upstream: FakeUpstream, postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    # Each worker's trace helper ships the same local store (one cursor): rows sent by both are stored once.
    env = {"DATABASE_URL": postgres_url, "LLM_SCOPE_MASTER_KEY": MASTER}
    proc, a = spawn_gateway(tmp_path, upstream_models(upstream), env=env, args=("--workers", "2"))
    try:
        ids = {chat(a, text=f"w{i}").headers["x-trace-id"] for i in range(40)}

        def stored() -> list[tuple[object, ...]]:
            return postgres_cluster.query(postgres_url, "SELECT trace_id, COUNT(*) FROM traces GROUP BY trace_id")

        eventually(lambda: {row[0] for row in stored()} >= ids, 30, "both workers' calls are shipped")
        rows = stored()
        assert len(rows) == 40 and {row[1] for row in rows} == {1}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
