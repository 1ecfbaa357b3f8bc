"""The migration that keeps each call's cost parts in columns: calls stored before it get theirs from their
record, in SQLite and PostgreSQL alike; a record the database cannot parse (a NaN) keeps them unknown (NULL),
never $0, and an unpriced call stays unpriced."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from llm_scope.postgres import Database
from llm_scope.tracing import pgstore, queries, store
from llm_scope.tracing.pgstore import PostgresStore
from llm_scope.tracing.queries import TraceFilter
from llm_scope.tracing.storage import TraceStore
from llm_scope.tracing.store import Store
from tests.postgres import PostgresCluster

_OLD = (
    "trace_id, start_time, end_time, route, requested_model, resolved_model, status_code, "
    "input_tokens, output_tokens, total_tokens, cost_input, cost_output, cost_total, record"
)
_COST = {"input": 0.01, "output": 0.02, "total": 0.03, "cache_read": 0.002, "cache_write": 0.003, "reasoning": 0.005}


def _rows() -> list[tuple[Any, ...]]:
    def row(n: int, cost: dict[str, float] | None, record: str | None = None) -> tuple[Any, ...]:
        data = {"trace_id": f"t{n}", "cost": cost, "model_parameters": {}}
        money = [None] * 3 if cost is None else [cost["input"], cost["output"], cost["total"]]
        text = record if record is not None else json.dumps(data)
        return (f"t{n}", 1000.0 + n, 1001.0 + n, "chat", "m", "m", 200, 10, 5, 15, *money, text)

    return [
        row(1, _COST),
        row(2, {"input": 0.01, "output": 0.02, "total": 0.03}),  # no parts billed apart: zeros, known
        row(3, None),  # unpriced
        row(4, _COST, '{"trace_id": "t4", "cost": {"input": 0.01, "output": 0.02, "total": 0.03}, "x": NaN}'),
    ]


def _old_sqlite(path: Path) -> Store:
    with sqlite3.connect(path) as db:
        for number, script in enumerate(store.MIGRATIONS[:5], start=1):
            db.executescript(script)
            db.execute(f"PRAGMA user_version={number}")
        db.executemany(f"INSERT INTO traces ({_OLD}) VALUES ({','.join('?' * 14)})", _rows())
    return Store(path)


def _old_postgres(url: str) -> PostgresStore:
    old = Database(url, component="traces", migrations=pgstore.MIGRATIONS[:1])
    for values in _rows():
        old.execute(f"INSERT INTO traces ({_OLD}) VALUES ({','.join('?' * 14)})", values)
    old.close()
    return PostgresStore(url)


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_calls_stored_before_get_their_cost_parts(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    migrated: TraceStore
    if engine == "sqlite":
        migrated = _old_sqlite(tmp_path / "old.db")
    else:
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        migrated = _old_postgres(cluster.new_database())
    try:
        rows = {r["trace_id"]: r for r in queries.list_traces(migrated, TraceFilter())["data"]}
        parts = ("cost_cache_read", "cost_cache_write", "cost_cache_write_1h", "cost_reasoning")
        assert [rows["t1"][p] for p in parts] == pytest.approx([0.002, 0.003, 0.0, 0.005])
        assert [rows["t2"][p] for p in parts] == [0.0, 0.0, 0.0, 0.0]
        assert [rows["t3"][p] for p in parts] == [None] * 4
        assert [rows["t4"][p] for p in parts] == [None] * 4
        total = queries.usage(migrated, TraceFilter())["total"]
        assert total["cost_unsplit_calls"] == 1  # t4: in cost_total, in no bucket
        assert total["cost_cache_read"] == pytest.approx(0.002)
        assert total["cost_fresh_input"] == pytest.approx(0.005 + 0.01)
    finally:
        migrated.close()
