"""Several processes writing one local store at once: `python -m bench.writers --writers 1,2,4,8`.

Every gateway worker's trace helper commits its batches to the same SQLite file, and SQLite lets one
connection write at a time. This starts N processes that each write `--batches` batches of `--batch` real
call records through `Store.write` (outbox rows included, as with an exporter on) as fast as they can, all
released at once, and prints for each N: records/s stored by all of them together, and per record the wall
time a writer spent in `Store.write` against the CPU time it spent there. Wall above CPU is time spent
waiting for the lock. Each run uses a fresh database; the median of `--repeat` runs is printed, with the
range, because the machine may be busy with other work.

To compare with other code, point PYTHONPATH at its `src` (the writers inherit the parent's sys.path):
`PYTHONPATH=/tmp/old/src python -m bench.writers`.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import statistics
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from llm_scope.tracing.store import Store

from .micro_tracing import make_record


@dataclass(frozen=True)
class Result:
    records: int
    wall: float  # seconds inside Store.write
    cpu: float  # this thread's CPU seconds inside Store.write
    began: float  # time.time() at the first write
    ended: float
    waits: list[float]  # per Store.write, wall minus CPU: mostly time spent waiting for the write lock


def _writer(path: str, batches: int, size: int, barrier: Barrier, out: Any) -> None:
    store = Store(Path(path))
    work = [[make_record() for _ in range(size)] for _ in range(batches)]
    gc.collect()
    gc.freeze()  # as the helper does after start-up: the records built above are not the writes' cost
    barrier.wait()
    wall = cpu = 0.0
    waits: list[float] = []
    began = time.time()
    for batch in work:
        w0, c0 = time.perf_counter(), time.thread_time()
        store.write(batch, outbox=True, max_outbox=10_000_000, kinds=("trace",))
        spent, used = time.perf_counter() - w0, time.thread_time() - c0
        cpu += used
        wall += spent
        waits.append(spent - used)
    out.put(Result(batches * size, wall, cpu, began, time.time(), waits))
    store.close()


def run_once(writers: int, batches: int, size: int) -> tuple[float, float, float, float, float]:
    """(records/s all together, wall µs per record, CPU µs per record, p99 and longest wait in one write in
    ms), each writer's time averaged."""
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "llm-scope.db")
        Store(Path(path)).close()  # migrated before the race starts
        barrier = ctx.Barrier(writers)
        out = ctx.Queue()
        procs = [ctx.Process(target=_writer, args=(path, batches, size, barrier, out)) for _ in range(writers)]
        for proc in procs:
            proc.start()
        results: list[Result] = [out.get() for _ in procs]
        for proc in procs:
            proc.join()
        check = Store(Path(path))
        stored = check.query("SELECT COUNT(*) AS n FROM traces")[0]["n"]
        check.close()
        if stored != writers * batches * size:  # every record stored once, or the numbers mean nothing
            raise SystemExit(f"stored {stored} records of {writers * batches * size}")
    records = sum(r.records for r in results)
    span = max(r.ended for r in results) - min(r.began for r in results)
    waits = sorted(wait for r in results for wait in r.waits)
    return (
        records / span,
        sum(r.wall for r in results) / records * 1e6,
        sum(r.cpu for r in results) / records * 1e6,
        waits[int(len(waits) * 0.99)] * 1e3,
        waits[-1] * 1e3,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writers", default="1,2,4", help="comma-separated process counts")
    parser.add_argument("--batch", type=int, default=500, help="records per Store.write")
    parser.add_argument("--batches", type=int, default=30, help="batches per writer")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("writers | records/s (range) | wall µs/record in write (range) | CPU µs/record | wait p99 ms | longest")
    for writers in (int(n) for n in args.writers.split(",")):
        runs = [run_once(writers, args.batches, args.batch) for _ in range(args.repeat)]
        rate, wall, cpu, p99, most = (sorted(run[i] for run in runs) for i in range(5))
        print(
            f"{writers:>7} | {statistics.median(rate):>9,.0f} ({rate[0]:,.0f}-{rate[-1]:,.0f})"
            f" | {statistics.median(wall):>7.1f} ({wall[0]:.1f}-{wall[-1]:.1f})"
            f" | {statistics.median(cpu):>6.1f} | {statistics.median(p99):>6.1f} ({p99[0]:.1f}-{p99[-1]:.1f})"
            f" | {statistics.median(most):.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
