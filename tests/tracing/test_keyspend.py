"""Per-key spend today and this month, the same from the SQLite store and from PostgreSQL: priced calls
summed, unpriced calls counted (never $0), older calls only in the month, last use whenever it was."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_scope.tracing.keyspend import Spend, key_spend, window_names, window_starts
from llm_scope.tracing.storage import TraceStore
from llm_scope.tracing.store import Store
from llm_scope.types import CallRecord, Cost, Usage

# Mid-month, mid-day, so "yesterday" is still this month whatever day the test runs on.
NOW = time.mktime((2026, 12, 15, 12, 0, 0, 0, 0, 0)) - time.timezone


def call(n: int, key_id: str | None, at: float, usd: float | None, tokens: int = 10) -> CallRecord:
    return CallRecord(
        trace_id=f"{n:032x}",
        route="chat_completion",
        start_time=at,
        end_time=at + 0.1,
        key_id=key_id,
        usage=Usage(input=tokens, output=tokens, total=2 * tokens),
        cost=Cost(input=usd / 2, output=usd / 2, total=usd) if usd is not None else None,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TraceStore]:
    if request.param == "sqlite":
        found: TraceStore = Store(tmp_path / "t.db")
    else:
        from llm_scope.tracing.pgstore import PostgresStore

        found = PostgresStore(request.getfixturevalue("postgres_url"))
    yield found
    found.close()


def test_windows_are_utc_day_and_month() -> None:
    day, month = window_starts(NOW)
    assert time.gmtime(day)[:6] == (2026, 12, 15, 0, 0, 0)
    assert time.gmtime(month)[:6] == (2026, 12, 1, 0, 0, 0)
    assert window_names(NOW) == ("2026-12-15", "2026-12")


def test_spend_by_key_today_and_this_month(store: TraceStore) -> None:
    records = [
        call(1, "key_a", NOW - 60, 0.25),
        call(2, "key_a", NOW - 120, 0.5),
        call(3, "key_a", NOW - 86400, 1.0),  # yesterday: this month only
        call(4, "key_a", NOW - 40 * 86400, 7.0),  # last month: neither, but it was a use
        call(5, "key_a", NOW - 30, None),  # no price: counted, not $0
        call(6, "key_b", NOW - 86400, None),  # only unpriced, and not today
        call(7, "key_c", NOW - 40 * 86400, 3.0),  # used last month only
        call(8, None, NOW - 10, 9.0),  # no key: in nobody's spend
        call(9, "key_d", NOW - 5, None, tokens=0),  # no tokens, no price: nothing was spent
    ]
    store.write(records, outbox=False, max_outbox=0)
    spend = key_spend(store, NOW)
    a = spend["key_a"]
    assert a.day == Spend(calls=3, usd=pytest.approx(0.75), unpriced_calls=1)
    assert a.month == Spend(calls=4, usd=pytest.approx(1.75), unpriced_calls=1)
    assert a.last_used == pytest.approx(NOW - 30)
    b = spend["key_b"]
    assert b.day == Spend() and b.month == Spend(calls=1, usd=None, unpriced_calls=1)
    c = spend["key_c"]
    assert c.day == Spend() and c.month == Spend() and c.last_used == pytest.approx(NOW - 40 * 86400)
    d = spend["key_d"]
    assert d.day == Spend(calls=1, usd=None, unpriced_calls=0)
    assert set(spend) == {"key_a", "key_b", "key_c", "key_d"}


def test_last_use_is_left_out_when_not_asked_for(store: TraceStore) -> None:
    store.write([call(1, "key_a", NOW - 60, 0.25), call(2, "key_b", NOW - 40 * 86400, 1.0)], outbox=False, max_outbox=0)
    spend = key_spend(store, NOW, last_used=False)
    assert set(spend) == {"key_a"}  # only keys with calls this month
    assert spend["key_a"].last_used is None and spend["key_a"].day == Spend(calls=1, usd=0.25, unpriced_calls=0)
