"""The gateway's side of tracing: queue records, hand them to the helper process, read the store.

`submit` is a list append on the request path, and every 8th call pickles the last 8 records (see
`handoff_queue`). Every `flush_interval` what is pickled goes to the helper as one message; each record
stays here until the helper says its rows are committed, so a helper that dies is restarted and given them
again (trace ids are the store's keys and span ids are stable, so a resent record is neither stored nor
exported twice). Reads (dashboard, API, budgets) run on this process's own SQLite connection, on a thread.
If the helper cannot take them at shutdown, what it still owes is written here.

At most `queue_size` records and `queue_bytes` of them pickled (plus one gathering batch) are held in memory;
a batch goes, to the helper or past the bound to disk, once `SEND_BYTES` of it wait or at the tick (coding
agents' calls carry 50-200 KB each; spilling each 256 KB chunk once sealed sent the helper ~3 calls a message,
and it fell further behind: docs/PERFORMANCE.md, memory). When the helper is behind (all cores busy), the
`overflow` policy decides: "spill" (the default) appends each batch it has no room for to a local file (see
`spill`) and hands it over, unchanged, once the helper has caught up, also after a restart or a kill -9;
"backpressure" has the entry layer refuse new calls (503 + Retry-After) while the bound is reached, and every
record of a call it let in is kept. Either way nothing is dropped while the disk has space, and `lost` stays 0.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from ..accounting.cost import prices_resolver
from ..logs import log_calls
from ..types import CallRecord
from . import helper_protocol
from .autosession import SessionRuns
from .bodyblocks import BodyBlocks
from .callfacts import note
from .handoff_queue import PendingRecords
from .handoff_reads import COUNTERS, HandoffReads
from .records import enrich
from .spill import Spill, Taken
from .storage import TraceStore
from .store import Store

log = logging.getLogger("llm_scope.tracing")
Overflow = Literal["spill", "backpressure"]
SYNC_EVERY = 1.0  # seconds between fdatasyncs of the spill file while it is written (see `spill`)
ADOPT_EVERY = 5.0  # seconds between looks for spill files a dead gateway process left
# Pickled records waiting that send (or spill) a batch before the tick. Far above what a tick gathers of short
# calls at c1 (~0.5 MB), so the helper is not woken more often there (docs/scaling.md); ~25 coding-agent calls.
SEND_BYTES = 4 << 20


class TraceHandoff(HandoffReads):
    """The gateway's end of the trace helper: records in, batches handed over, the store read (see above)."""

    def __init__(
        self,
        options: helper_protocol.HelperOptions,
        *,
        queue_size: int = 10_000,
        queue_bytes: int = 16 << 20,
        flush_interval: float = 0.2,
        batch_size: int = 2_500,
        flush_timeout: float = 10.0,
        on_cost: Callable[[list[tuple[str, str, float]]], None] | None = None,
        overflow: Overflow = "spill",
        spill_dir: Path | None = None,
    ) -> None:
        self.on_cost = on_cost
        self.overflow = overflow
        self._spills = overflow == "spill"
        self.spill = Spill(  # what waits on disk: `pending` records, `spilled` in all
            spill_dir or options.store_path.parent / "trace-spill"
        )
        # Past the bound, records are spilled a chunk at a time rather than one write per call.
        self._chunk = max(1, min(256, queue_size))
        self.options = options
        self.store_path = options.store_path
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.flush_timeout = flush_timeout
        self._queue = PendingRecords(self._lose, at_most=min(batch_size, queue_size))
        # Sent and not yet committed by the helper, by sequence number (sent in order, answered in order):
        # the message, its record count, and the spilled frame it came from, if it did.
        self._unacked: dict[int, tuple[tuple[Any, ...], int, Taken | None]] = {}
        self._unacked_records = 0
        self._unacked_bytes = 0
        self._seq = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._submitted = 0
        self._lost = 0
        self._helper: dict[str, int] = {}  # the running helper's own counters, as last reported
        self._before: collections.Counter[str] = collections.Counter()  # counters of helpers that exited
        self._store: TraceStore | None = None  # what reads go to: the local store, or the shared one
        self._local: Store | None = None
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm-scope-store")
        self._proc: asyncio.subprocess.Process | None = None
        self._listener: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._stopping = False
        self._restarts = 0  # in a row, for the backoff
        self.helper_restarts = 0  # in all, for the metric
        self._last_loss_log = 0.0

    # --- the hot path ----------------------------------------------------------------------------------

    def submit(self, record: CallRecord) -> None:
        queue = self._queue
        queue.append(record)
        self._submitted += 1
        if queue.bytes >= SEND_BYTES or (
            self._spills and len(queue) >= self._chunk and len(queue) + self._unacked_records >= self.queue_size
        ):
            self._send_queued()  # big bodies go now; what the helper has no room for goes to disk now

    def behind(self) -> bool:
        """Whether the records in memory are at a bound: under "backpressure" new calls are refused."""
        queue = self._queue
        return (
            len(queue) + self._unacked_records >= self.queue_size
            or queue.bytes + self._unacked_bytes >= self.queue_bytes
        )

    def _room(self, size: int = 0) -> bool:
        """Whether the helper may be sent `size` bytes more: what it has not committed, with them, stays under
        both bounds (or it has nothing: a batch larger than the bound still goes)."""
        held = self._unacked_bytes
        return self._unacked_records < self.queue_size and (not held or held + size <= self.queue_bytes)

    # --- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        # Opened here first, so migrations have run before the helper opens the file.
        self._store = self._local = await self.read(Store, self.store_path)
        if self.options.database_url:  # psycopg is imported only where it is used
            from .pgstore import PostgresStore

            self._store = PostgresStore(self.options.database_url)
        await self._adopt()
        await self._spawn()
        self._writer = asyncio.create_task(self._write_loop(), name="llm-scope-trace-sender")

    async def stop(self, export_deadline: float = 5.0) -> None:
        """Hand everything to the helper, let it write and export (bounded), then write here what is left."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        if self.helper_pid is not None:
            await self.flush()  # what waits on disk too, as the helper makes room (bounded by flush_timeout)
        self._stopping = True
        self._send_queued(everything=True)
        proc, listener = self._proc, self._listener
        if proc is not None and proc.returncode is None and proc.stdin is not None:
            self._write_to(proc, ("stop", export_deadline))
            with contextlib.suppress(Exception):
                await proc.stdin.drain()
            try:
                await asyncio.wait_for(proc.wait(), export_deadline + 30)
            except TimeoutError:
                log.error("trace helper did not stop in time; killing it")
                proc.kill()
                await proc.wait()
        if listener is not None:
            # It has read the helper's last answers by the time the pipe closed; if that helper had died
            # earlier, it may be waiting to start another, which no longer matters.
            await asyncio.wait([listener], timeout=5)
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        if self._unacked:
            await self._write_here()
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        if self.spill.pending:
            log.warning("%d trace records stay in the spill file; the next start stores them", self.spill.pending)
        self.spill.close()
        for store in {id(s): s for s in (self._store, self._local) if s is not None}.values():
            await self.read(store.close)
        self._db.shutdown(wait=True)

    async def flush(self) -> None:
        """Return once everything submitted so far is committed (reads right after a call rely on it)."""
        self._send_queued()
        spilled_before = self.spill.enqueued  # read back in order: once this many are taken, all were sent
        try:
            async with asyncio.timeout(self.flush_timeout):
                while self.spill.taken < spilled_before and self._unacked:
                    await self._committed(min(self._unacked))  # the helper took one; the answer sent it more
                if self._unacked:
                    await self._committed(self._seq)
        except TimeoutError:
            log.warning("trace helper has not committed the latest records after %.0f s", self.flush_timeout)

    async def _committed(self, seq: int) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((seq, waiter))
        await asyncio.shield(waiter)

    async def add_score(self, score: dict[str, Any]) -> None:
        self._send(("score", score))
        await self.flush()

    # --- talking to the helper -----------------------------------------------------------------------

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last_sync = last_adopt = loop.time()
        while True:
            await asyncio.sleep(self.flush_interval)
            self._send_queued()
            now = loop.time()
            if now - last_sync >= SYNC_EVERY:
                last_sync = now
                await loop.run_in_executor(None, self.spill.sync)
            if now - last_adopt >= ADOPT_EVERY:
                last_adopt = now
                await self._adopt()

    async def _adopt(self) -> None:
        # On the loop, as everything else that touches the spill's segments: a listdir and a few flocks.
        try:
            if self.spill.adopt():
                self._send_queued()
        except OSError:
            log.exception("looking for spilled trace records in %s failed", self.spill.directory)

    def _send_queued(self, *, everything: bool = False) -> None:
        """Spilled batches first, as the helper has room; then the queue; under "spill", the rest to disk."""
        self._send_spilled()
        queue = self._queue
        while everything or not self._spills or self._room(queue.bytes):
            if (batch := queue.take(self.batch_size)) is None:
                return
            self._send(("records", batch[0]), batch[1])
        while (batch := queue.take(self.batch_size)) is not None:
            if not self.spill.append(*batch):
                self._lose(batch[1], "the trace helper is behind and the spill file could not be written")

    def _send_spilled(self) -> None:
        while self._room(self.spill.next_size()) and (taken := self.spill.take()) is not None:
            self._send(("records", taken.body), taken.count, taken)

    def _send(self, message: tuple[str, Any], records: int = 0, taken: Taken | None = None) -> None:
        self._seq += 1
        numbered = (message[0], self._seq, message[1])
        self._unacked[self._seq] = (numbered, records, taken)
        self._unacked_records += records
        self._unacked_bytes += _size(message)
        if self._proc is not None and self._proc.returncode is None:
            self._write_to(self._proc, numbered)

    def _write_to(self, proc: asyncio.subprocess.Process, message: tuple[Any, ...]) -> None:
        stdin = proc.stdin
        if stdin is None or stdin.is_closing():
            return  # it is exiting: the listener sees that and starts another, which is sent everything unacked
        try:
            parts = helper_protocol.encode_parts(message)
        except Exception:  # something in a score pickle cannot take: lose that message, loudly, not the pipe
            log.exception("a trace message could not be encoded for the helper; dropping it")
            self._settle(message[1], lost=True)
            return
        stdin.writelines(parts)  # the batch itself, not a joined copy of it, waits in the pipe's buffer

    async def _spawn(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "llm_scope.tracing.helper",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self._proc = proc
        self._write_to(proc, ("init", self.options))
        for message, _, _ in list(self._unacked.values()):
            self._write_to(proc, message)
        self._listener = asyncio.create_task(self._listen(proc), name="llm-scope-trace-helper")

    async def _listen(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while (message := await helper_protocol.read(proc.stdout)) is not None:
            if message[0] == "done":
                self._helper = message[2]
                self._settle(message[1])
                if self.spill.pending and not self._stopping:
                    self._send_spilled()  # keep the helper busy while it has catching up to do
                if message[3] and self.on_cost is not None:
                    try:
                        self.on_cost(message[3])
                    except Exception:  # the metric must not stop the records' acknowledgements
                        log.exception("recording cost metrics failed")
            elif message[0] == "stats":
                self._helper = message[1]
        code = await proc.wait()
        self._before.update({name: self._helper.get(name, 0) for name in COUNTERS})
        self._helper = {}
        if self._stopping:
            return
        self._restarts += 1
        self.helper_restarts += 1
        delay = min(30.0, 0.25 * 2 ** min(self._restarts, 7))
        log.error(
            "trace helper exited (code %s); starting another in %.1f s and resending %d records it had not stored",
            code,
            delay,
            self._unacked_records,
        )
        while True:
            await asyncio.sleep(delay)
            if self._stopping:
                return
            try:
                await self._spawn()
                return
            except Exception:  # e.g. out of file descriptors: keep the records, try again later
                log.exception("starting the trace helper failed; will retry")
                delay = min(30.0, delay * 2)

    def _settle(self, seq: int, *, lost: bool = False) -> None:
        entry = self._unacked.pop(seq, None)
        if entry is None:
            return  # answered twice (a resend the first helper had already committed)
        message, records, taken = entry
        self._unacked_bytes -= _size(message)
        if records:
            self._unacked_records -= records
            if lost:
                self._lose(records, "trace records could not be handed to the helper")
            else:
                self._restarts = 0
        if taken is not None:
            self.spill.ack(taken)
        done = min(self._unacked, default=self._seq + 1)
        still = []
        for target, waiter in self._waiters:
            if target < done:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                still.append((target, waiter))
        self._waiters = still

    async def _write_here(self) -> None:
        """Last resort at shutdown, when the helper is gone: store what it owed with this process's connection."""
        messages = [m for m, _, _ in self._unacked.values()]
        load, joined = helper_protocol.load_rows, helper_protocol.joined
        records = [r for m in messages if m[0] == "records" for r in load(joined(m[2]))]
        scores = [m[2] for m in messages if m[0] == "score"]
        kinds = self.options.outbox_kinds
        outbox = self.options.langfuse is not None  # scores go to Langfuse only
        options = self.options

        prices_for = prices_resolver(options.price_overrides)

        def work() -> None:
            bodies = BodyBlocks()
            for record in records:  # as the helper's pipeline does
                record.input = bodies.read(record.input)
                note(record, repo=options.session_repo)
                enrich(record, prices_for=prices_for, secrets=options.secrets, trace_content=options.trace_content)
            self.local.prepare = self.local.prepare or SessionRuns().assign
            self.local.write(records, outbox=bool(kinds), max_outbox=options.max_outbox, kinds=kinds)
            for score in scores:
                self.local.add_score(score, outbox_payload=json.dumps(score) if outbox else None)

        try:
            await self.read(work)
            log.warning("stored %d traces the helper had not committed before it stopped", len(records))
            log_calls(records)
        except Exception:
            log.exception("storing the traces the helper left failed")
            self._lose(len(records), "trace helper stopped before storing them")
        else:
            for _, _, taken in self._unacked.values():
                if taken is not None:
                    self.spill.ack(taken)
        self._unacked.clear()
        self._unacked_records = self._unacked_bytes = 0

    def _lose(self, count: int, why: str) -> None:
        self._lost += count
        now = time.monotonic()
        if now - self._last_loss_log > 10:
            self._last_loss_log = now
            log.error("trace records lost: %s (lost so far: %d)", why, self._lost)


def _size(message: tuple[Any, ...]) -> int:
    """What a message to the helper counts against `queue_bytes`: its batch of records, if it is one."""
    return helper_protocol.batch_bytes(message[-1]) if message[0] == "records" else 0
