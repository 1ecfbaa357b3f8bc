"""Several writers on one local store: each gateway worker's helper commits to the same SQLite file.

Writers queue on a flock beside the database (`tracing/writelock.py`) instead of polling SQLite's lock.
These check that the lock is really taken around a write, that a writer killed while holding it does not
wedge the others, and that real helper processes writing at once store every record exactly once.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

from llm_scope.tracing.handoff import TraceHandoff
from llm_scope.tracing.helper_protocol import HelperOptions
from llm_scope.tracing.store import Store
from tests.tracing.test_store_conformance import record

HOLD = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0])


def write_in_thread(store: Store, n: int) -> threading.Thread:
    thread = threading.Thread(target=store.write, args=([record(n)],), kwargs={"outbox": True, "max_outbox": 100})
    thread.start()
    return thread


def test_a_write_waits_for_the_lock_beside_the_database_and_goes_once_it_is_free(tmp_path: Path) -> None:
    db = tmp_path / "llm-scope.db"
    store = Store(db)
    lock = os.open(db.with_name(db.name + "-writelock"), os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)  # another writer's open file description: flock orders it with the store's
    writer = write_in_thread(store, 1)
    writer.join(0.5)
    assert writer.is_alive(), "the write went ahead while another writer held the lock"
    assert count(db) == 0
    fcntl.flock(lock, fcntl.LOCK_UN)
    writer.join(30)
    assert not writer.is_alive()
    assert count(db) == 1
    os.close(lock)
    store.close()


def test_a_writer_killed_while_holding_the_lock_does_not_wedge_the_others(tmp_path: Path) -> None:
    db = tmp_path / "llm-scope.db"
    store = Store(db)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(db.with_name(db.name + "-writelock"))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    writer = write_in_thread(store, 2)
    writer.join(0.5)
    assert writer.is_alive()
    os.kill(holder.pid, signal.SIGKILL)  # the kernel releases a dead process's flock
    holder.wait()
    writer.join(30)
    assert not writer.is_alive(), "the write still waits on a dead writer's lock"
    assert count(db) == 1
    store.close()


def test_without_a_writable_directory_for_the_lock_writes_still_go_through(tmp_path: Path) -> None:
    """SQLite's own busy handler is the fallback: the lock file is an optimisation, not a requirement."""
    db = tmp_path / "llm-scope.db"
    Store(db).close()
    lock = db.with_name(db.name + "-writelock")
    lock.unlink()
    lock.mkdir()  # a name that cannot be opened as a file
    store = Store(db)
    store.write([record(3)], outbox=True, max_outbox=100)
    store.close()
    assert count(db) == 1


async def _write_through_helpers(db: Path, helpers: int, each: int) -> set[str]:
    options = HelperOptions(
        store_path=db, langfuse=None, secrets=(), trace_content=True, max_outbox=100_000, retention_days=30
    )
    handoffs = [
        TraceHandoff(
            options,
            spill_dir=db.parent / f"spill-{n}",
            batch_size=37,  # many small commits from every helper, interleaved
        )
        for n in range(helpers)
    ]
    for handoff in handoffs:
        await handoff.start()
    sent: set[str] = set()
    for i in range(each):
        for n, handoff in enumerate(handoffs):
            rec = record(n * each + i)
            sent.add(rec.trace_id)
            handoff.submit(rec)
        if i % 50 == 0:
            await asyncio.sleep(0)
    await asyncio.gather(*(handoff.stop() for handoff in handoffs))
    for handoff in handoffs:
        assert handoff.stats.lost == 0
    return sent


def test_real_helpers_writing_one_store_at_once_store_every_record_exactly_once(tmp_path: Path) -> None:
    db = tmp_path / "llm-scope.db"
    sent = asyncio.run(_write_through_helpers(db, helpers=3, each=400))
    with sqlite3.connect(db) as conn:
        rows = [row[0] for row in conn.execute("SELECT trace_id FROM traces")]
    assert len(rows) == len(sent) == 1_200
    assert set(rows) == sent
