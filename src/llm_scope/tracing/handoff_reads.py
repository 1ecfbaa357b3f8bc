"""What the rest of the gateway reads of the trace hand-off: its stores, the depth of what it holds, and the
helper's counters. Split from `handoff` by role: this is the read side, `handoff` the queue and the hand-over.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from . import helper_protocol
from .handoff_queue import PendingRecords
from .spill import Spill
from .storage import TraceStore, started
from .store import Store

T = TypeVar("T")
COUNTERS = ("written", "exported", "export_failures", "rejected", "lost")


class HandoffReads:
    """The state below is `TraceHandoff`'s, which sets it; declared here for what reads it."""

    spill: Spill
    _store: TraceStore | None
    _local: Store | None
    _db: ThreadPoolExecutor
    _proc: asyncio.subprocess.Process | None
    _queue: PendingRecords  # records not handed over yet
    _unacked_records: int
    _stopping: bool
    _submitted: int
    _lost: int
    _helper: dict[str, int]  # the running helper's own counters, as last reported
    _before: collections.Counter[str]  # counters of helpers that exited

    # --- what the rest of the gateway reads --------------------------------------------------------------

    @property
    def store(self) -> TraceStore:
        return started(self._store)

    @property
    def local(self) -> Store:
        """This instance's own SQLite store (the same as `store` unless DATABASE_URL is set)."""
        return started(self._local)

    @property
    def ship_backlog(self) -> int:
        """Calls stored here and not yet shipped to PostgreSQL (0 without DATABASE_URL)."""
        return self._helper.get("ship_backlog", 0)

    @property
    def ship_failures(self) -> int:
        """Failed shipping attempts of the running helper."""
        return self._helper.get("ship_failures", 0)

    @property
    def ready(self) -> bool:
        return self._store is not None and not self._stopping

    @property
    def queue_depth(self) -> int:
        """Records held in memory only: queued here, or sent and not yet committed by the helper."""
        return len(self._queue) + self._unacked_records

    @property
    def helper_pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    @property
    def held_records(self) -> int:
        return self._helper.get("held_records", 0)

    @property
    def store_failing(self) -> bool:
        """The helper cannot write to the local store (a full disk, a read-only or locked file) and retries."""
        return bool(self._helper.get("store_failing"))

    @property
    def unsent(self) -> int:
        """Records queued in this process, not yet handed to the helper (tests wait for 0)."""
        return len(self._queue)

    @property
    def stats(self) -> helper_protocol.PipelineStats:
        now = self._helper
        counters = {name: self._before[name] + now.get(name, 0) for name in COUNTERS}
        counters["lost"] += self._lost + self.spill.corrupt
        return helper_protocol.PipelineStats(submitted=self._submitted, backlog=now.get("backlog", 0), **counters)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a read query on this process's store thread, so the event loop never waits on SQLite."""
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)
