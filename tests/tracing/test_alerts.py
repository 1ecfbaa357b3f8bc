"""Budget alerts end to end: a real gateway, real calls, a real webhook on loopback. Crossing 80% and then 100%
of a budget sends exactly those two alerts, once (a restart sends nothing again); a webhook that is down gets
them when it is back; no secret is in a body. And the crossings themselves, table-tested."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from llm_scope.access.keys import VirtualKey
from llm_scope.tracing.alerts import claim, crossings, ensure_table, safe_target, sent, take_due
from llm_scope.tracing.alerts import settle as settle_row
from llm_scope.tracing.keyspend import KeySpend, Spend
from llm_scope.tracing.storage import TraceStore
from llm_scope.tracing.store import Store
from tests.conftest import UPSTREAM_KEY
from tests.fakes.serving import free_port
from tests.fakes.upstream import FakeUpstream
from tests.fakes.webhook import PATH, Webhook
from tests.gateway_server import GatewayServer, make_settings, model_config
from tests.http.test_keys_api import MASTER, as_master, chat, models

INTERVAL = 0.05


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def settle(gw: GatewayServer, checks: int = 3) -> None:
    """Let the alert loop run a few more full checks (counted, not timed)."""
    alerts = gw.app.state.budget_alerts
    target = alerts.ticks + checks
    wait_for(lambda: alerts.ticks >= target)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook().start()
    yield hook
    hook.stop()


def gateway(tmp_path: Path, upstream: FakeUpstream, url: str, **extra: Any) -> GatewayServer:
    settings = make_settings(
        tmp_path, master_key=MASTER, budget_webhook_url=url, budget_alert_interval=INTERVAL, **extra
    )
    return GatewayServer(settings, model_config=model_config(models(upstream)))


def cost_of_one_call(gw: GatewayServer) -> float:
    probe = as_master(gw, "POST", "/admin/keys", json={"owner": "probe"})
    chat(gw, probe["key"])
    (found,) = [k for k in as_master(gw, "GET", "/api/keys")["data"] if k["id"] == probe["id"]]
    as_master(gw, "DELETE", f"/admin/keys/{probe['id']}")
    usd: float = found["spend_today"]["usd"]
    assert usd > 0
    return usd


def spent(gw: GatewayServer, key_id: str) -> int:
    (found,) = [k for k in as_master(gw, "GET", "/api/keys")["data"] if k["id"] == key_id]
    calls: int = found["spend_today"]["calls"]
    return calls


def test_crossing_80_then_100_percent_sends_those_two_alerts_once(
    tmp_path: Path, upstream: FakeUpstream, webhook: Webhook
) -> None:
    with gateway(tmp_path, upstream, webhook.url) as gw:
        cost = cost_of_one_call(gw)
        # One call spends ~42% of the daily budget: the second passes 80%, the third 100%. The monthly budget is
        # far away and never alerts.
        key = as_master(
            gw, "POST", "/admin/keys", json={"owner": "alice", "budget_daily_usd": cost * 2.4,
                                             "budget_monthly_usd": cost * 100}
        )  # fmt: skip
        chat(gw, key["key"])
        assert spent(gw, key["id"]) == 1
        settle(gw)
        assert webhook.bodies == []  # 42%: nothing to say

        chat(gw, key["key"])
        wait_for(lambda: len(webhook.bodies) == 1)
        first = webhook.bodies[0]
        assert (first["key_id"], first["owner"], first["period"], first["threshold"]) == (key["id"], "alice", "day", 80)
        assert first["budget_usd"] == pytest.approx(cost * 2.4)
        assert first["spend_usd"] == pytest.approx(cost * 2)
        assert first["period_id"] == as_master(gw, "GET", "/api/keys")["day"]
        assert "80%" in first["text"] and key["id"] in first["text"] and "daily" in first["text"]

        chat(gw, key["key"])
        wait_for(lambda: len(webhook.bodies) == 2)
        second = webhook.bodies[1]
        assert (second["key_id"], second["period"], second["threshold"]) == (key["id"], "day", 100)
        assert second["spend_usd"] == pytest.approx(cost * 3)
        assert "used up" in second["text"]
        settle(gw)
        assert len(webhook.bodies) == 2  # once each, however many checks see the spend past them
        metrics = gw.client().get("/metrics", headers={"Authorization": f"Bearer {MASTER}"}).text
        for threshold in (80, 100):
            assert f'llm_scope_budget_alerts_total{{outcome="delivered",threshold="{threshold}"}} 1.0' in metrics
        assert 'outcome="failed"' not in metrics

        secrets = [MASTER, key["key"], key["hint"].rstrip("…"), UPSTREAM_KEY, PATH]
        for raw in webhook.raw:
            for secret in secrets:
                assert secret.encode() not in raw

    # The memory is durable: a restart on the same data dir sends nothing again.
    with gateway(tmp_path, upstream, webhook.url) as gw:
        settle(gw)
        assert gw.app.state.budget_alerts.delivered == 0
    assert len(webhook.bodies) == 2


def test_a_webhook_that_is_down_gets_the_alerts_when_it_is_back(
    tmp_path: Path, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    hook = Webhook(port=free_port())  # not listening yet: connection refused
    with gateway(tmp_path, upstream, hook.url) as gw:
        cost = cost_of_one_call(gw)
        key = as_master(gw, "POST", "/admin/keys", json={"owner": "bob", "budget_monthly_usd": cost / 2})
        chat(gw, key["key"])  # 200% at once: past both thresholds
        alerts = gw.app.state.budget_alerts
        wait_for(lambda: alerts.failures >= 4)  # each alert tried and retried
        hook.start()
        try:
            hook.status = 503  # up, but failing
            wait_for(lambda: hook.refused >= 2)
            hook.status = 200
            wait_for(lambda: len(hook.bodies) == 2)
            settle(gw)
            assert sorted(b["threshold"] for b in hook.bodies) == [80, 100]
            assert {b["period"] for b in hook.bodies} == {"month"}
            assert all(b["key_id"] == key["id"] and b["owner"] == "bob" for b in hook.bodies)
            assert len(hook.bodies) == 2
            metrics = gw.client().get("/metrics", headers={"Authorization": f"Bearer {MASTER}"}).text
            failed = re.findall(
                r'^llm_scope_budget_alerts_total\{outcome="failed",threshold="\d+"\} (\S+)$', metrics, re.M
            )
            assert sum(float(n) for n in failed) == alerts.failures >= 4
        finally:
            hook.stop()
    assert PATH not in caplog.text  # the webhook's secret path is never logged, only its host
    assert "not delivered to http://127.0.0.1" in caplog.text


def test_instances_sharing_postgres_send_each_alert_once(
    tmp_path: Path, upstream: FakeUpstream, webhook: Webhook, postgres_url: str
) -> None:
    """Two instances on one DATABASE_URL both watch the shared spend; the shared table lets one of them send."""
    with (
        gateway(tmp_path / "a", upstream, webhook.url, database_url=postgres_url) as a,
        gateway(tmp_path / "b", upstream, webhook.url, database_url=postgres_url) as b,
    ):
        made = as_master(a, "POST", "/admin/keys", json={"owner": "erin", "budget_daily_usd": 1e-9})
        body = {"model": "gpt-fake", "messages": [{"role": "user", "content": "hello"}]}
        with b.client() as c:  # far past the budget at once, spent through the other instance (once it knows the key)
            headers = {"authorization": f"Bearer {made['key']}"}
            wait_for(lambda: c.post("/v1/chat/completions", headers=headers, json=body).status_code == 200)
        wait_for(lambda: len(webhook.bodies) == 2)
        settle(a)
        settle(b)
        assert sorted((x["key_id"], x["period"], x["threshold"]) for x in webhook.bodies) == [
            (made["id"], "day", 80),
            (made["id"], "day", 100),
        ]
        sent = a.app.state.budget_alerts.delivered + b.app.state.budget_alerts.delivered
        assert sent == 2


def key(key_id: str, daily: float | None, monthly: float | None) -> VirtualKey:
    return VirtualKey(id=key_id, owner="o", hint="h", budget_daily_usd=daily, budget_monthly_usd=monthly)


def spend(day: float | None, month: float | None, unpriced: int = 0) -> KeySpend:
    return KeySpend(Spend(1, day, unpriced), Spend(1, month, unpriced), 0.0)


@pytest.mark.parametrize(
    ("budget", "used", "expected"),
    [
        (key("k", 10, None), spend(7.99, 7.99), []),
        (key("k", 10, None), spend(8.0, 8.0), [("day", 80)]),
        (key("k", 10, None), spend(10.0, 10.0), [("day", 80), ("day", 100)]),  # a jump crosses both
        (key("k", None, 100), spend(9.0, 85.0), [("month", 80)]),
        (key("k", 10, 100), spend(12.0, 100.0), [("day", 80), ("day", 100), ("month", 80), ("month", 100)]),
        (key("k", 10, None), spend(None, None, unpriced=5), []),  # unpriced calls are not dollars
        (key("k", 0, None), spend(0.0, 0.0), []),  # a zero budget refuses calls; nothing to warn of
        (key("k", None, None), spend(99.0, 99.0), []),
        (key("other", 1, 1), spend(5.0, 5.0), []),  # no spend recorded for this key
    ],
)
def test_crossings(budget: VirtualKey, used: KeySpend, expected: list[tuple[str, int]]) -> None:
    found = crossings([budget], {"k": used}, "2026-12-04", "2026-12", 1.0)
    assert [(a.period, a.threshold) for a in found] == expected
    for alert in found:
        assert alert.period_id == ("2026-12-04" if alert.period == "day" else "2026-12")
        body = alert.body()
        assert body["text"].startswith("llm-scope: key k (o)") and body["budget_usd"] == alert.budget_usd


def test_logs_show_the_webhook_by_host_only() -> None:
    assert safe_target("https://hooks.slack.com/services/T0/B0/secret") == "https://hooks.slack.com"


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TraceStore]:
    if request.param == "sqlite":
        found: TraceStore = Store(tmp_path / "t.db")
    else:
        from llm_scope.tracing.pgstore import PostgresStore

        found = PostgresStore(request.getfixturevalue("postgres_url"))
    yield found
    found.close()


def test_the_table_claims_once_leases_and_forgets_old_deliveries(store: TraceStore) -> None:
    now = time.time()
    ensure_table(store, now)
    ensure_table(store, now)  # idempotent
    first = crossings([key("k", 10, None)], {"k": spend(9.0, 9.0)}, "2026-12-04", "2026-12", now)
    assert claim(store, first, now) == 1 and claim(store, first, now) == 0  # remembered: never claimed twice
    (taken,) = take_due(store, now, now + 60)
    assert taken == (first[0], 0)
    assert take_due(store, now + 1, now + 61) == []  # leased to the first taker
    settle_row(store, first[0], None, 1, now + 5)  # failed: due again later
    assert take_due(store, now + 4, now + 64) == []
    assert [a.threshold for a, _ in take_due(store, now + 5, now + 65)] == [80]
    settle_row(store, first[0], now + 6, 2, now + 6)
    assert take_due(store, now + 1000, now + 1060) == []
    old = [replace(first[0], period_id="2026-09-01", crossed_at=now - 90 * 86400)]
    pending = [replace(first[0], period_id="2026-09-02", crossed_at=now - 90 * 86400)]
    claim(store, old + pending, now)
    (stale, _), (kept, _) = sorted(take_due(store, now, now + 60), key=lambda x: x[0].period_id)
    assert (stale.period_id, kept.period_id) == ("2026-09-01", "2026-09-02")
    settle_row(store, stale, now, 1, now)
    ensure_table(store, now)  # forgets the delivered one of a window long past, keeps the rest
    assert sorted(r["period_id"] for r in sent(store)) == ["2026-09-02", "2026-12-04"]
