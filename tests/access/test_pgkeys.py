"""Virtual keys in PostgreSQL, seen by two instances (two stores on one database), and budgets on their sum."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from llm_scope.access.limits import MemoryLimits, Windows
from llm_scope.access.pgkeys import KeyStoreUnavailable, PostgresKeyStore
from llm_scope.access.reconcile import ReconciledLimits, window_starts
from llm_scope.tracing.pgstore import PostgresStore
from llm_scope.types import CallRecord, Cost, Usage
from tests.fakes.serving import free_port
from tests.postgres import PostgresCluster


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_key_made_on_one_instance_works_and_is_revoked_on_the_other(
    postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    a, b = PostgresKeyStore(postgres_url, refresh=0.1), PostgresKeyStore(postgres_url, refresh=0.1)
    a.start()
    b.start()
    try:
        key, secret = a.create("ann", models=["gpt-fake"], budget_daily_usd=1.5, rpm=10)
        assert a.lookup(secret) == key  # at once where it was made
        wait_for(lambda: b.lookup(secret) is not None)
        assert b.lookup(secret) == key and b.lookup(secret + "x") is None
        assert [k.id for k in b.list()] == [key.id]
        assert a.revoke(key.id) and not a.revoke(key.id)
        assert a.lookup(secret) is None
        wait_for(lambda: b.lookup(secret) is None)
        assert [k.id for k in b.list(include_revoked=True)] == [key.id] and b.list() == []
        stored = postgres_cluster.query(postgres_url, "SELECT * FROM virtual_keys")
        assert secret not in repr(stored)  # only its hash
    finally:
        a.close()
        b.close()


def test_loaded_keys_keep_working_while_postgres_is_down(postgres_url: str) -> None:
    keys = PostgresKeyStore(postgres_url, refresh=0.1)
    keys.start()
    key, secret = keys.create("bob")
    assert keys.stale() is None
    keys.db.url = f"postgresql://postgres@127.0.0.1:{free_port()}/gone"  # the database goes away
    keys.db.close()
    assert not keys.reload()
    assert keys.lookup(secret) == key
    wait_for(lambda: keys.stale() is not None)  # unknown keys are refused saying why they may be unknown
    assert "unreachable" in str(keys.stale())
    with pytest.raises(KeyStoreUnavailable) as refused:
        keys.create("carol")
    assert refused.value.status == 503
    keys.close()


def call(n: int, key_id: str, usd: float) -> CallRecord:
    now = time.time()
    return CallRecord(
        trace_id=f"{n:032x}",
        route="chat_completion",
        start_time=now,
        end_time=now + 0.1,
        key_id=key_id,
        usage=Usage(input=1, output=1, total=2),
        cost=Cost(input=usd / 2, output=usd / 2, total=usd),
    )


def test_budgets_see_the_spend_of_every_instance(postgres_url: str) -> None:
    shared = PostgresStore(postgres_url)
    here = ReconciledLimits(MemoryLimits())

    async def spend_since(since: float) -> dict[str, float]:
        return shared.spend_by_key(since)

    async def scenario() -> None:
        w = Windows.now()
        await here.record("k", 2, 0.25, w)  # a call on this instance
        shared.write([call(1, "k", 0.25)])  # ... shipped
        shared.write([call(2, "k", 1.0), call(3, "other", 5.0)])  # calls on other instances
        assert (await here.usage("k", w)).spend_day == pytest.approx(0.25)
        assert await here.reconcile(spend_since)
        used = await here.usage("k", w)
        assert used.spend_day == pytest.approx(1.25) and used.spend_month == pytest.approx(1.25)
        await here.record("k", 2, 0.5, w)  # recorded after the question: counted on top until the next one
        assert (await here.usage("k", w)).spend_day == pytest.approx(1.75)

        async def down(since: float) -> dict[str, float]:
            raise ConnectionError("down")

        assert not await here.reconcile(down)  # figures kept, local counting goes on
        assert (await here.usage("k", w)).spend_day == pytest.approx(1.75)

    asyncio.run(scenario())
    shared.close()


def test_window_starts_are_utc_midnights() -> None:
    day, month = window_starts(1_749_988_800.5)  # 2025-06-15 12:00:00.5 UTC
    assert day == 1_749_945_600.0 and month == 1_748_736_000.0
