"""Shipping the local store to PostgreSQL, inside the trace helper: the local SQLite is the durable outbox.

Each instance commits its calls to its own SQLite first (so a call never waits for PostgreSQL, and nothing is
lost while it is down), then this loop copies the rows past a cursor to PostgreSQL and moves the cursor.
PostgreSQL ignores a trace id it already holds, so a batch sent twice (the helper died between the insert and
the cursor update) changes nothing: every call arrives exactly once. While PostgreSQL is down the loop backs
off and the rows wait; `backlog` says how many, for `/ready` and the metrics.

The work runs on one thread of its own: a database that hangs must not hold up the helper's event loop,
which answers the gateway. Once an hour it also applies the retention to PostgreSQL (every instance does;
the batched deletes make a pass that finds nothing cheap).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..postgres import DatabaseError
from . import blobs
from .blocks import flat
from .lanes import pause
from .pgstore import PostgresStore
from .store import Store

log = logging.getLogger("llm_scope.tracing")
PRUNE_EVERY = 3600.0  # seconds between retention passes over PostgreSQL (in batches: see PostgresStore.prune)


@dataclass
class ShipStats:
    shipped: int = 0  # rows sent and committed (new or already there)
    ship_failures: int = 0
    ship_backlog: int = 0  # local rows not yet in PostgreSQL


def flat_keys(refs: list[Any]) -> set[str]:
    return {key for r in refs for key in flat(r)}


class Shipper:
    def __init__(
        self, local: Store, remote: PostgresStore, *, batch_size: int = 2000, retention_days: float | None = None
    ) -> None:
        self.local = local
        self.remote = remote
        self.retention_days = retention_days
        self._last_prune = time.monotonic()
        self.target = remote.name
        self.batch_size = batch_size
        self.stats = ShipStats()
        self._wake = asyncio.Event()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm-scope-shipper")
        self._task: asyncio.Task[None] | None = None
        self._counted = 0.0
        self._last_log = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="llm-scope-trace-shipper")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, deadline: float) -> None:
        """Ship what is left, for at most `deadline` seconds; the rest waits for the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            async with asyncio.timeout(max(deadline, 0.1)):
                while await self._step() == self.batch_size:
                    pass
        except Exception as exc:  # the rest waits in the local store for the next start
            log.warning("stopping with traces not yet shipped to PostgreSQL (%s)", exc)
        await asyncio.get_running_loop().run_in_executor(self._thread, self.remote.close)
        self._thread.shutdown(wait=False)

    async def _step(self) -> int:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self.ship_batch)

    def ship_batch(self) -> int:
        """Copy the oldest unshipped rows, then move the cursor past them; returns how many rows moved."""
        traces, scores = self.local.unshipped(self.target, self.batch_size)
        if traces:
            refs = [json.loads(row[-1]) for row in traces if row[-1] is not None]  # the rows' input blocks
            self.remote.write_rows([row[1:] for row in traces], blobs.bodies(self.local, flat_keys(refs)))
        if scores:
            self.remote.write_scores([row[1:] for row in scores])
        if traces or scores:
            self.local.mark_shipped(self.target, traces[-1][0] if traces else 0, scores[-1][0] if scores else 0)
        moved = len(traces) + len(scores)
        self.stats.shipped += moved
        if len(traces) < self.batch_size and len(scores) < self.batch_size:
            self.stats.ship_backlog = 0
        elif time.monotonic() - self._counted > 2:
            self._counted = time.monotonic()
            self.stats.ship_backlog = self.local.ship_backlog(self.target)
        return max(len(traces), len(scores))

    def _count_backlog(self) -> None:
        if time.monotonic() - self._counted > 2:
            self._counted = time.monotonic()
            self.stats.ship_backlog = self.local.ship_backlog(self.target)

    async def _run(self) -> None:
        delay = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await pause(self._wake, delay)
            try:
                while await self._step() == self.batch_size:
                    pass
                delay = 0.0
                if self.retention_days is not None and time.monotonic() - self._last_prune > PRUNE_EVERY:
                    self._last_prune = time.monotonic()
                    await loop.run_in_executor(self._thread, self.remote.prune, self.retention_days)
            except Exception as exc:
                self.stats.ship_failures += 1
                delay = min(30.0, max(delay * 2, 0.5)) * random.uniform(0.8, 1.2)
                with contextlib.suppress(Exception):
                    await loop.run_in_executor(self._thread, self._count_backlog)
                if time.monotonic() - self._last_log > 30:
                    self._last_log = time.monotonic()
                    log.warning(
                        "shipping traces to PostgreSQL failed (%s); %d wait in the local store, retrying",
                        exc if isinstance(exc, DatabaseError) else type(exc).__name__,
                        self.stats.ship_backlog,
                    )
