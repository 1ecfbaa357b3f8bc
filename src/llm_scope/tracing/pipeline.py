"""Never dropped: records go queue → SQLite (store + outbox) → exporters, inside the trace helper process.

`submit` is a deque append. A writer task drains the queue every `flush_interval` (the helper also flushes
each message it is given) and writes one transaction per batch, with an outbox row per exporter. Each
exporter (Langfuse, an OpenTelemetry backend) has a lane (`lanes`) that sends its rows and deletes them only
once acknowledged, backing off while its backend is down; rows outlive restarts. Span ids are stable, so a
batch resent after a crash is not duplicated.

SQLite and encoding run on the event loop itself: the helper's loop serves no client, and threads would
only trade the GIL back and forth (see `helper`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..accounting.cost import Prices
from ..types import CallRecord
from .autosession import SessionRuns
from .bodyblocks import BodyBlocks
from .callfacts import note
from .exporting import Exporter
from .helper_protocol import PipelineStats
from .lanes import ExportLane
from .records import enrich
from .storage import started
from .store import Store

log = logging.getLogger("llm_scope.tracing")


class TracePipeline:
    def __init__(
        self,
        store_path: Path,
        exporter: Exporter | None,
        *,
        exporters: Sequence[Exporter] = (),
        prices_for: Callable[[CallRecord], Prices | None],
        secrets: Sequence[str],
        trace_content: bool = True,
        max_outbox: int = 2_000_000,
        flush_interval: float = 0.2,
        batch_size: int = 500,
        retention_days: float = 30,
        session_repo: bool = False,
    ) -> None:
        self.store_path = store_path
        self._store: Store | None = None
        self.exporters = [e for e in (exporter, *exporters) if e is not None]
        self.prices_for = prices_for
        self.secrets = list(secrets)
        self.trace_content = trace_content
        self.max_outbox = max_outbox
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.retention_days = retention_days
        self.session_repo = session_repo  # read the repository and branch the tools state in their prompts
        self.sessions = SessionRuns()
        self.bodies = BodyBlocks()  # the blocks of the bodies handed over as bytes, read lately
        self.stats = PipelineStats()
        self._queue: collections.deque[CallRecord] = collections.deque()
        # Each lane holds the records just written and not yet exported, by trace id, and sends these objects
        # instead of reading them back from SQLite. Bounded (prompts can be large): past the cap the oldest
        # are read back, and while a backend is failing its lane holds none, since the outbox has them.
        self.lanes = [
            ExportLane(
                exporter,
                lambda: self.store,
                self.stats,
                batch_size=batch_size,
                on_backlog=self._count_backlog,
                recent_cap=batch_size * 2,
            )
            for exporter in self.exporters
        ]
        self._kinds = tuple(lane.kind for lane in self.lanes)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._last_overflow_log = 0.0

    # --- the hot path ----------------------------------------------------------------------------------

    def submit(self, record: CallRecord) -> None:
        self._queue.append(record)  # bounded by the gateway, which holds each record until it is stored
        self.stats.submitted += 1

    @property
    def store(self) -> Store:
        return started(self._store)

    @property
    def exporter(self) -> Exporter | None:
        """The first exporter (Langfuse when configured), for callers that know of one."""
        return self.exporters[0] if self.exporters else None

    @property
    def held_records(self) -> int:
        """Written records kept in memory for the exporters (bounded; none while a backend is failing)."""
        return sum(len(lane.recent) for lane in self.lanes)

    # --- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._store = store = Store(self.store_path)
        store.prepare = self.sessions.assign
        for lane in self.lanes:
            lane.backlog = store.backlog(lane.kinds)
            if lane.backlog:
                log.info("resuming export of %d traces to %s left from a previous run", lane.backlog, lane.kind)
        self._count_backlog()
        self._tasks.append(asyncio.create_task(self._write_loop(), name="llm-scope-trace-writer"))
        for lane in self.lanes:
            self._tasks.append(asyncio.create_task(lane.run(), name=f"llm-scope-trace-export-{lane.kind}"))

    async def stop(self, export_deadline: float = 5.0) -> None:
        """Drain the queue to disk, then give the exporter a bounded chance to deliver what is pending."""
        self._stopping = True
        for lane in self.lanes:
            lane.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()
        if self.lanes:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(lane.export_all() for lane in self.lanes)), export_deadline)
            for exporter in self.exporters:
                await exporter.aclose()
        if self._store is not None:
            self._store.close()

    async def flush(self) -> None:
        """Write everything queued so far (tests and shutdown use this; the writer loop does it too)."""
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.batch_size * 5))]
            await self._write(batch)

    # --- writer ----------------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        last_prune = 0.0
        while not self._stopping:
            await asyncio.sleep(self.flush_interval)
            try:
                await self.flush()
                if time.monotonic() - last_prune > 3600:
                    last_prune = time.monotonic()
                    self.store.prune(self.retention_days)
            except Exception:  # a full disk must not kill the writer; records stay queued (bounded)
                log.exception("writing traces to the local store failed; will retry")

    async def _write(self, batch: list[CallRecord]) -> None:
        try:
            for record in batch:  # the session facts first: enrich may drop the content they come from
                record.input = self.bodies.read(record.input)  # a large body's input, from its bytes
                note(record, repo=self.session_repo)
                enrich(record, prices_for=self.prices_for, secrets=self.secrets, trace_content=self.trace_content)
            dropped = self.store.write(batch, outbox=bool(self.lanes), max_outbox=self.max_outbox, kinds=self._kinds)
        except BaseException:
            self._queue.extendleft(reversed(batch))  # keep them for the next attempt
            raise
        self._written(batch, dropped)

    def _written(self, batch: list[CallRecord], dropped: int) -> None:
        self.stats.written += len(batch)
        if dropped:
            self._lose(dropped, f"export outbox is over its limit of {self.max_outbox} rows")
        for lane in self.lanes:  # the bound drops the oldest rows, whichever lane's they were: an estimate
            lane.written(batch, len(batch) - dropped // len(self.lanes))

    def _count_backlog(self) -> None:
        self.stats.backlog = sum(lane.backlog for lane in self.lanes)

    def _lose(self, count: int, why: str) -> None:
        self.stats.lost += count
        now = time.monotonic()
        if now - self._last_overflow_log > 10:
            self._last_overflow_log = now
            log.error("trace records lost: %s (lost so far: %d)", why, self.stats.lost)

    # --- scores ----------------------------------------------------------------------------------------

    async def add_score(self, score: dict[str, Any]) -> None:
        lane = next((lane for lane in self.lanes if "score" in lane.kinds), None)
        self.store.add_score(score, outbox_payload=json.dumps(score) if lane is not None else None)
        if lane is not None:
            lane.score_queued()
