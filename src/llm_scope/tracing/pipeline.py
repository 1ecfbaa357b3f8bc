"""Never dropped: records go queue → SQLite (store + outbox) → Langfuse, inside the trace helper process.

`submit` is a deque append. A writer task drains the queue every `flush_interval` (the helper also flushes
each message it is given) and writes one transaction per batch. An exporter task reads the outbox, sends
to Langfuse, and deletes rows only once Langfuse acknowledged them, backing off while it is down; rows
outlive restarts. Span ids are stable, so a batch resent after a crash is not duplicated.

SQLite and encoding run on the event loop itself: the helper's loop serves no client, and threads would
only trade the GIL back and forth (see `helper`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..accounting.cost import Prices
from ..types import CallRecord
from .frames import PipelineStats
from .langfuse import ExportResult, ExportStatus, LangfuseExporter
from .records import enrich
from .store import Store

log = logging.getLogger("llm_scope.tracing")


class TracePipeline:
    def __init__(
        self,
        store_path: Path,
        exporter: LangfuseExporter | None,
        *,
        prices_for: Callable[[CallRecord], Prices | None],
        secrets: Sequence[str],
        trace_content: bool = True,
        max_outbox: int = 2_000_000,
        flush_interval: float = 0.2,
        batch_size: int = 500,
        retention_days: float = 30,
    ) -> None:
        self.store_path = store_path
        self._store: Store | None = None
        self.exporter = exporter
        self.prices_for = prices_for
        self.secrets = list(secrets)
        self.trace_content = trace_content
        self.max_outbox = max_outbox
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.retention_days = retention_days
        self.stats = PipelineStats()
        self._queue: collections.deque[CallRecord] = collections.deque()
        # Records just written and not yet exported, by trace id: the exporter sends these objects instead of
        # reading them back from SQLite. Bounded (prompts can be large): past the cap the oldest are read back
        # as before, and while Langfuse is failing none are held, since the outbox has them anyway.
        self._recent: dict[str, CallRecord] = {}
        self._recent_cap = batch_size * 2
        self._tasks: list[asyncio.Task[None]] = []
        self._wake_exporter = asyncio.Event()
        self._stopping = False
        self._last_overflow_log = 0.0

    # --- the hot path ----------------------------------------------------------------------------------

    def submit(self, record: CallRecord) -> None:
        self._queue.append(record)  # bounded by the gateway, which holds each record until it is stored
        self.stats.submitted += 1

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("trace pipeline not started")
        return self._store

    @property
    def held_records(self) -> int:
        """Written records kept in memory for the exporter (bounded; none while Langfuse is failing)."""
        return len(self._recent)

    # --- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._store = store = Store(self.store_path)
        self.stats.backlog = store.backlog()
        if self.stats.backlog:
            log.info("resuming export of %d traces left from a previous run", self.stats.backlog)
        self._tasks.append(asyncio.create_task(self._write_loop(), name="llm-scope-trace-writer"))
        if self.exporter is not None:
            self._tasks.append(asyncio.create_task(self._export_loop(), name="llm-scope-trace-exporter"))

    async def stop(self, export_deadline: float = 5.0) -> None:
        """Drain the queue to disk, then give the exporter a bounded chance to deliver what is pending."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()
        if self.exporter is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._export_all(), export_deadline)
            await self.exporter.aclose()
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
            for record in batch:
                enrich(record, prices_for=self.prices_for, secrets=self.secrets, trace_content=self.trace_content)
            dropped = self.store.write(batch, outbox=self.exporter is not None, max_outbox=self.max_outbox)
        except BaseException:
            self._queue.extendleft(reversed(batch))  # keep them for the next attempt
            raise
        self._written(batch, dropped)

    def _written(self, batch: list[CallRecord], dropped: int) -> None:
        self.stats.written += len(batch)
        if dropped:
            self._lose(dropped, f"export outbox is over its limit of {self.max_outbox} rows")
        if self.exporter is not None:
            self.stats.backlog += len(batch) - dropped
            recent = self._recent
            for record in batch[-self._recent_cap :]:
                recent[record.trace_id] = record
            while len(recent) > self._recent_cap:
                del recent[next(iter(recent))]
            self._wake_exporter.set()

    def _lose(self, count: int, why: str) -> None:
        self.stats.lost += count
        now = time.monotonic()
        if now - self._last_overflow_log > 10:
            self._last_overflow_log = now
            log.error("trace records lost: %s (lost so far: %d)", why, self.stats.lost)

    # --- exporter --------------------------------------------------------------------------------------

    async def _export_loop(self) -> None:
        delay = 0.0
        while not self._stopping:
            if delay:
                await asyncio.sleep(delay)
            else:
                # asyncio.timeout, not wait_for: on 3.11 a cancel that lands as the event fires is swallowed
                # by wait_for, and stop() then waited for this loop forever (seen in the SIGTERM test).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._wake_exporter.wait()
            self._wake_exporter.clear()
            try:
                result = await self._export_batch()
            except Exception:
                log.exception("trace export failed unexpectedly; will retry")
                result = ExportResult(ExportStatus.RETRYABLE)
            if result is None:
                delay = 0.0
            elif result.ok:
                delay = 0.0
                self._wake_exporter.set()  # a full batch went out: more is waiting, send it at once
            elif result.status is ExportStatus.RETRYABLE or result.http_status in (401, 403):
                self.stats.export_failures += 1
                delay = min(60.0, max(delay * 2, 0.5)) if delay else 0.5
                if result.retry_after:
                    delay = max(delay, min(result.retry_after, 300.0))
                delay *= random.uniform(0.8, 1.2)
            else:
                delay = 0.0

    async def _export_all(self) -> None:
        while True:
            result = await self._export_batch()
            if result is None or not result.ok:
                return

    async def _export_batch(self) -> ExportResult | None:
        """Send the oldest pending rows; returns None when nothing was pending."""
        assert self.exporter is not None
        known = self._recent or None
        rows = self.store.pending(self.batch_size, known)
        if not rows:
            self.stats.backlog = 0
            return None
        gone = [ident for ident, _, item in rows if item is None]  # pruned by retention before export
        traces = [(ident, item) for ident, kind, item in rows if kind == "trace" and item is not None]
        scores = [(ident, item) for ident, kind, item in rows if kind == "score" and item is not None]
        done: list[int] = list(gone)
        result = ExportResult(ExportStatus.OK)
        if traces:
            result = await self.exporter.export([record for _, record in traces])
            if result.ok:
                done += [ident for ident, _ in traces]
                self.stats.exported += len(traces)
            elif result.status is ExportStatus.REJECTED and result.http_status not in (401, 403):
                log.error(
                    "Langfuse rejected %d traces (HTTP %s); they stay in the local store only",
                    len(traces),
                    result.http_status,
                )
                done += [ident for ident, _ in traces]
                self.stats.rejected += len(traces)
        if result.ok:
            for ident, score in scores:
                score_result = await self.exporter.send_score(score)
                if score_result.ok or (
                    score_result.status is ExportStatus.REJECTED and score_result.http_status not in (401, 403)
                ):
                    done.append(ident)
                else:
                    result = score_result
                    break
        if done:
            self.store.acknowledge(done)
            finished = set(done)
            for ident, record in traces:
                if ident in finished:
                    self._recent.pop(record.trace_id, None)
            self.stats.backlog = max(0, self.stats.backlog - len(done))
        if not result.ok:
            self._recent.clear()
        if not done and not result.ok:
            self.store.mark_attempt([ident for ident, _, _ in rows])
        if result.ok and len(rows) < self.batch_size:
            return None  # drained: wait for the writer's next wake-up
        return result

    # --- scores ----------------------------------------------------------------------------------------

    async def add_score(self, score: dict[str, Any]) -> None:
        payload = json.dumps(score) if self.exporter is not None else None
        self.store.add_score(score, outbox_payload=payload)
        if self.exporter is not None:
            self.stats.backlog += 1
            self._wake_exporter.set()
