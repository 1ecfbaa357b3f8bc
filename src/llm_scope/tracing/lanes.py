"""One export lane per exporter: its own rows in the durable outbox, its own backoff, its own backlog.

Each exporter (Langfuse, an OpenTelemetry backend) has outbox rows of its own kinds, written in the same
transaction as the call's stored row, and a lane that sends the oldest ones and deletes them only once the
backend acknowledged them. So one backend being down, slow or refusing delays only its own rows, and a batch
resent after a crash is not duplicated (span ids derive from the trace id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

from ..types import CallRecord
from .exporting import Exporter, ExportResult, ExportStatus
from .helper_protocol import PipelineStats
from .store import Store

log = logging.getLogger("llm_scope.tracing")

# The outbox kinds of each exporter's rows: Langfuse keeps the kinds rows had before lanes existed, so an
# outbox left by an older version is still delivered.
TRACE_KINDS = {"langfuse": "trace", "otel": "otel"}


async def pause(wake: asyncio.Event, delay: float) -> None:
    """Between two rounds of a sending loop (a lane's, the shipper's): sleep out the backoff `delay`, or with
    none, wait up to a second for `wake` (new rows) and clear it."""
    if delay:
        await asyncio.sleep(delay)
    else:
        # asyncio.timeout, not wait_for: on 3.11 a cancel that lands as the event fires is swallowed
        # by wait_for, and stop() then waited for the loop forever (seen in the SIGTERM test).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await wake.wait()
    wake.clear()


def trace_kind(exporter: Exporter) -> str:
    return TRACE_KINDS.get(exporter.name, exporter.name)


class ExportLane:
    """Sends one exporter's outbox rows. `recent` holds records just written, by trace id, so they are sent
    as they are instead of being read back from SQLite; only the Langfuse lane carries scores."""

    def __init__(
        self,
        exporter: Exporter,
        store: Callable[[], Store],
        stats: PipelineStats,
        *,
        batch_size: int,
        on_backlog: Callable[[], None],
        recent_cap: int,
    ) -> None:
        self.exporter = exporter
        self.kind = trace_kind(exporter)
        self.kinds = (self.kind, "score") if hasattr(exporter, "send_score") else (self.kind,)
        self._store = store
        self.stats = stats
        self.batch_size = batch_size
        self.backlog = 0
        self._on_backlog = on_backlog
        self.recent: dict[str, CallRecord] = {}
        self._recent_cap = recent_cap
        self.wake = asyncio.Event()
        self._stopping = False

    def written(self, batch: Sequence[CallRecord], queued: int) -> None:
        """`queued` of the batch's records got an outbox row of this lane (the rest were over the bound)."""
        self.backlog += queued
        self._on_backlog()
        recent = self.recent
        for record in batch[-self._recent_cap :]:
            recent[record.trace_id] = record
        while len(recent) > self._recent_cap:
            del recent[next(iter(recent))]
        self.wake.set()

    def score_queued(self) -> None:
        self.backlog += 1
        self._on_backlog()
        self.wake.set()

    def stop(self) -> None:
        self._stopping = True

    async def run(self) -> None:
        delay = 0.0
        while not self._stopping:
            await pause(self.wake, delay)
            try:
                result = await self.export_batch()
            except Exception:
                log.exception("trace export to %s failed unexpectedly; will retry", self.exporter.name)
                result = ExportResult(ExportStatus.RETRYABLE)
            if result is None or result.ok:
                delay = 0.0
                if result is not None:
                    self.wake.set()  # a full batch went out: more is waiting, send it at once
            elif result.status is ExportStatus.RETRYABLE or result.http_status in (401, 403):
                self.stats.export_failures += 1
                delay = min(60.0, max(delay * 2, 0.5)) if delay else 0.5
                if result.retry_after:
                    delay = max(delay, min(result.retry_after, 300.0))
                delay *= random.uniform(0.8, 1.2)
            else:
                delay = 0.0

    async def export_all(self) -> None:
        while True:
            result = await self.export_batch()
            if result is None or not result.ok:
                return

    async def export_batch(self) -> ExportResult | None:
        """Send the oldest pending rows; returns None when nothing was pending."""
        store = self._store()
        rows = store.pending(self.batch_size, self.recent or None, kinds=self.kinds)
        if not rows:
            self._set_backlog(0)
            return None
        gone = [ident for ident, _, item in rows if item is None]  # pruned by retention before export
        traces = [(ident, item) for ident, kind, item in rows if kind == self.kind and item is not None]
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
                    "%s rejected %d traces (HTTP %s); they stay in the local store only",
                    self.exporter.name,
                    len(traces),
                    result.http_status,
                )
                done += [ident for ident, _ in traces]
                self.stats.rejected += len(traces)
        if result.ok and scores:
            result = await self._send_scores(scores, done)
        if done:
            store.acknowledge(done)
            finished = set(done)
            for ident, record in traces:
                if ident in finished:
                    self.recent.pop(record.trace_id, None)
            self._set_backlog(max(0, self.backlog - len(done)))
        if not result.ok:
            self.recent.clear()  # while the backend fails, the outbox has them: hold none in memory
        if not done and not result.ok:
            store.mark_attempt([ident for ident, _, _ in rows])
        if result.ok and len(rows) < self.batch_size:
            return None  # drained: wait for the writer's next wake-up
        return result

    async def _send_scores(self, scores: list[tuple[int, Any]], done: list[int]) -> ExportResult:
        send = self.exporter.send_score  # type: ignore[attr-defined]  # only lanes whose exporter has it
        for ident, score in scores:
            result: ExportResult = await send(score)
            if result.ok or (result.status is ExportStatus.REJECTED and result.http_status not in (401, 403)):
                done.append(ident)
            else:
                return result
        return ExportResult(ExportStatus.OK)

    def _set_backlog(self, value: int) -> None:
        self.backlog = value
        self._on_backlog()
