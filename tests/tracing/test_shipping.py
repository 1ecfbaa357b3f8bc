"""Shipping the local store to PostgreSQL: every call arrives once, whatever fails in between.

Real SQLite, real PostgreSQL (a throw-away cluster); the outage is a URL nothing listens on, then the real one.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from llm_scope.postgres import Database, DatabaseError
from llm_scope.tracing import queries
from llm_scope.tracing.pgstore import MIGRATIONS, PostgresStore
from llm_scope.tracing.shipping import Shipper
from llm_scope.tracing.store import Store
from tests.fakes.serving import free_port
from tests.postgres import PostgresCluster
from tests.tracing.test_store_conformance import DAY, batch, record


def counts(cluster: PostgresCluster, url: str) -> tuple[int, int, float]:
    rows, distinct = cluster.query(url, "SELECT COUNT(*), COUNT(DISTINCT trace_id) FROM traces")[0]
    spend = cluster.query(url, "SELECT COALESCE(SUM(usd), 0) FROM key_spend")[0][0]
    return int(str(rows)), int(str(distinct)), float(str(spend))


def test_ships_each_row_once_even_when_sent_again(
    tmp_path: Path, postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    local = Store(tmp_path / "local.db")
    remote = PostgresStore(postgres_url)
    shipper = Shipper(local, remote, batch_size=2)
    local.write(batch(), outbox=False, max_outbox=100)
    local.add_score(
        {"id": "s", "traceId": batch()[0].trace_id, "name": "n", "value": 1, "dataType": "NUMERIC"},
        outbox_payload=None,
    )
    while shipper.ship_batch() == 2:
        pass
    assert shipper.stats.ship_backlog == 0 and local.ship_backlog(remote.name) == 0
    assert counts(postgres_cluster, postgres_url) == (5, 5, pytest.approx(0.009))
    for call in batch():  # inputs travel as refs with their blocks, and read back whole
        assert (found := queries.get_trace(remote, call.trace_id)) is not None and found["input"] == call.input
    assert shipper.ship_batch() == 0
    # The helper died after PostgreSQL committed and before the cursor moved: the same rows go again.
    local.db.execute("DELETE FROM shipping")
    # ... and the helper was given the same calls again and stored them anew (new rowids).
    local.write(batch()[:2], outbox=False, max_outbox=100)
    while shipper.ship_batch():
        pass
    assert counts(postgres_cluster, postgres_url) == (5, 5, pytest.approx(0.009))
    assert postgres_cluster.query(postgres_url, "SELECT COUNT(*) FROM scores")[0][0] == 1
    local.close()
    remote.close()


def test_rows_wait_while_postgres_is_unreachable(tmp_path: Path, postgres_cluster: PostgresCluster) -> None:
    local = Store(tmp_path / "local.db")
    url = postgres_cluster.new_database()
    down = PostgresStore(f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    down.name = PostgresStore(url).name  # the same target: the cursor is the real database's
    local.write([record(n) for n in range(1, 8)], outbox=False, max_outbox=100)
    with pytest.raises(DatabaseError) as failure:
        Shipper(local, down).ship_batch()
    assert failure.value.unavailable
    assert local.ship_backlog(down.name) == 7
    shipper = Shipper(local, PostgresStore(url))
    assert shipper.ship_batch() == 7
    assert counts(postgres_cluster, url)[:2] == (7, 7)
    assert local.ship_backlog(down.name) == 0


def test_prune_keeps_the_newest_row_so_rowids_never_repeat(tmp_path: Path) -> None:
    local = Store(tmp_path / "local.db")
    local.write([record(1, at=DAY), record(2, at=DAY)], outbox=False, max_outbox=100)
    assert local.prune(1) == 1  # both are old; the newest stays, so the next row's rowid is a new one
    local.mark_shipped("pg", 2, 0)
    local.write([record(3, at=DAY)], outbox=False, max_outbox=100)
    traces, _ = local.unshipped("pg", 10)
    assert [row[1] for row in traces] == [record(3).trace_id]


def test_instances_starting_together_migrate_once(postgres_cluster: PostgresCluster, postgres_url: str) -> None:
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            Database(postgres_url, component="traces", migrations=MIGRATIONS).query("SELECT 1")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    versions = postgres_cluster.query(postgres_url, "SELECT component, version FROM llm_scope_migrations")
    assert versions == [("traces", len(MIGRATIONS))]
