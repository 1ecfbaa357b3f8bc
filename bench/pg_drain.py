"""How fast the trace helper drains its local store into PostgreSQL: `python -m bench.pg_drain [--url URL]`.

Fills a local SQLite store with N typical call records (a short chat: a few hundred bytes of prompt and answer,
one in four with a virtual key), then runs the shipper's own loop (`Shipper.ship_batch`, what the helper runs)
until nothing is left, and prints calls/s and the CPU this process spent per call. The database should be an
empty throw-away one (without --url a throw-away cluster is started, fsync on).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from llm_scope.tracing.pgstore import PostgresStore
from llm_scope.tracing.shipping import Shipper
from llm_scope.tracing.store import Store
from llm_scope.types import CallRecord, Cost, Usage


def records(n: int, offset: int) -> list[CallRecord]:
    now = time.time()
    return [
        CallRecord(
            trace_id=f"{offset + i:032x}",
            route="chat_completion",
            start_time=now - 1 + i / 1e6,
            end_time=now - 0.5 + i / 1e6,
            user_id=f"user-{i % 17}",
            session_id=f"session-{i % 101}",
            requested_model="gpt-4o-mini",
            resolved_model="gpt-4o-mini",
            provider="openai",
            key_id=f"key_{i % 5}" if i % 4 == 0 else None,
            input=[{"role": "user", "content": f"Summarise this in one line, please: call {i} " + "lorem " * 40}],
            output={"role": "assistant", "content": "A short summary of the text. " * 4},
            usage=Usage(input=80, output=30, total=110),
            cost=Cost(input=1.2e-05, output=1.8e-05, total=3.0e-05),
        )
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="an empty throw-away PostgreSQL database (default: start a throw-away cluster)")
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=2000, help="rows per shipping batch (the helper's default)")
    args = parser.parse_args()
    cluster = None
    if args.url is None:
        from tests.postgres import PostgresCluster, postgres_bin_dir

        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise SystemExit("PostgreSQL binaries not found: install Debian's postgresql, or pass --url")
        cluster = PostgresCluster(bin_dir, durable=True)
        args.url = cluster.new_database()
    try:
        run(args)
    finally:
        if cluster is not None:
            cluster.destroy()


def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        local = Store(Path(tmp) / "local.db")
        for start in range(0, args.calls, 5000):
            local.write(records(min(5000, args.calls - start), start), outbox=False, max_outbox=0)
        remote = PostgresStore(args.url)
        remote.query("SELECT 1")  # connect and migrate outside the timing
        shipper = Shipper(local, remote, batch_size=args.batch)
        cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        while shipper.ship_batch():
            pass
        elapsed = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        stored = remote.query("SELECT COUNT(*) AS n FROM traces")[0]["n"]
        print(
            f"{args.calls} calls drained in {elapsed:.2f} s: {args.calls / elapsed:,.0f} calls/s; "
            f"shipper CPU {cpu / args.calls * 1e6:.0f} µs per call; {stored} rows in PostgreSQL"
        )
        remote.close()
        local.close()


if __name__ == "__main__":
    main()
