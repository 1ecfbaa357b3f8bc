"""The trace helper process: prices, scrubs, stores, logs and exports the gateway's call records.

Run by `TraceHandoff` as `python -m llm_scope.tracing.helper`, one per gateway worker. This work used to
run on threads inside the gateway, where every SQLite write, OTLP encode and export took the GIL from the
event loop: with one client the hand-offs alone cost the gateway more CPU than the work (measured). Here it
runs the same `TracePipeline` in its own interpreter, and writes the one log line per call, in batches.
Messages come in on stdin and answers go out on stdout (see `helper_protocol`); logs go to stderr, as the gateway's.

It answers "done" for a message only once its rows are committed, so the gateway keeps each record until
then and resends it to a new helper if this one dies. It leaves when the gateway says stop or its stdin
closes (the gateway is gone): either way it first writes what it was given and tries to export it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..accounting.cost import prices_resolver
from ..logs import BatchedStream, CallLines, configure_logging
from ..types import CallRecord
from . import helper_protocol, memprobe
from .genai import GenAIExporter
from .langfuse import LangfuseExporter
from .pipeline import TracePipeline

if TYPE_CHECKING:
    from .shipping import Shipper

log = logging.getLogger("llm_scope.tracing")
STATS_EVERY = 1.0


def stats_of(pipeline: TracePipeline, health: dict[str, int], shipper: Shipper | None = None) -> dict[str, int]:
    """Counters, plus `store_failing` (1 while writes to the local store keep failing) for /ready, and the
    shipper's (with DATABASE_URL)."""
    shipped = dataclasses.asdict(shipper.stats) if shipper is not None else {}
    return {**dataclasses.asdict(pipeline.stats), "held_records": pipeline.held_records, **health, **shipped}


def spent_by_model(records: list[CallRecord]) -> list[tuple[str, str, float]]:
    """USD by (model, provider) for the gateway's cost metric: one small list per batch, not per call."""
    sums: dict[tuple[str, str], float] = {}
    for record in records:
        if record.cost is not None and record.cost.total:
            key = (record.resolved_model or record.requested_model, record.provider)
            sums[key] = sums.get(key, 0.0) + record.cost.total
    return [(model, provider, usd) for (model, provider), usd in sums.items()]


async def _until_done(step: Callable[[], Awaitable[None]], health: dict[str, int]) -> None:
    """A full disk or a locked file must not drop a message: retry it, holding up the next ones meanwhile,
    and say so in `health` (the gateway's /ready reports it) until a write succeeds again."""
    last_log = 0.0
    while True:
        try:
            await step()
            health["store_failing"] = 0
            return
        except Exception:
            health["store_failing"] = 1
            if time.monotonic() - last_log > 10:
                last_log = time.monotonic()
                log.exception("writing traces to the local store failed; will retry")
            await asyncio.sleep(1.0)


async def _pipes(in_fd: int, out_fd: int) -> tuple[helper_protocol.PipeReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(out_fd, "wb", buffering=0)
    )
    return helper_protocol.PipeReader(in_fd), asyncio.StreamWriter(transport, protocol, None, loop)


def _run_idle() -> None:
    """SCHED_IDLE, not a nice value, because since Linux 6.6 (EEVDF) a waking task no longer preempts a running
    nice-19 one before its slice ends, so a helper's batch still delayed the request that arrived during it;
    a SCHED_IDLE task is preempted by any normal task's wake-up. An unprivileged process may always do this."""
    policy = getattr(os, "SCHED_IDLE", None)
    if policy is None:
        log.warning("LLM_SCOPE_HELPER_SCHED=idle: this OS has no SCHED_IDLE; the trace helper runs as normal")
        return
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))
    except OSError as exc:
        log.warning("LLM_SCOPE_HELPER_SCHED=idle: could not set SCHED_IDLE (%s); the trace helper runs as normal", exc)


async def serve(in_fd: int, out_fd: int) -> None:
    reader, writer = await _pipes(in_fd, out_fd)
    first = await reader.read()
    if first is None or first[0] != "init":
        return
    options: helper_protocol.HelperOptions = first[1]
    if options.nice:
        os.nice(options.nice)  # lower only: an unprivileged process may always do that
    logs = BatchedStream(2)
    configure_logging(options.log_level, options.log_format, logs)
    if options.idle:
        _run_idle()
    call_lines = CallLines(options.log_format, logs)
    exporter = LangfuseExporter(**options.langfuse) if options.langfuse is not None else None
    otel = [GenAIExporter(**options.otel)] if options.otel is not None else []
    pipeline = TracePipeline(
        options.store_path,
        exporter,
        exporters=otel,
        prices_for=prices_resolver(options.price_overrides),
        secrets=options.secrets,
        trace_content=options.trace_content,
        max_outbox=options.max_outbox,
        retention_days=options.retention_days,
        session_repo=options.session_repo,
    )

    def send(message: tuple[Any, ...]) -> None:
        if not writer.is_closing():
            writer.write(helper_protocol.encode(message))

    health = {"store_failing": 0}

    async def report() -> None:
        last: dict[str, int] = {}
        while True:
            await asyncio.sleep(STATS_EVERY)
            logs.drain()
            now = stats_of(pipeline, health, shipper)
            if now != last:
                send(("stats", now))
                last = now

    await pipeline.start()
    shipper: Shipper | None = None
    if options.database_url:  # psycopg is imported only where it is used
        from . import pgstore, shipping

        remote = pgstore.PostgresStore(options.database_url)
        shipper = shipping.Shipper(pipeline.store, remote, retention_days=options.retention_days)
        shipper.start()
    reporter = asyncio.create_task(report())
    deadline = 5.0
    try:
        while (message := await reader.read()) is not None:
            kind = message[0]
            if kind == "stop":
                deadline = message[1]
                break
            seq, payload = message[1], message[2]
            spent: list[tuple[str, str, float]] = []
            if kind == "records":
                records = helper_protocol.load_rows(payload)
                for record in records:
                    pipeline.submit(record)
                await _until_done(pipeline.flush, health)  # prices and scrubs them too
                call_lines.write(records)
                spent = spent_by_model(records)
                if shipper is not None:
                    shipper.wake()
            elif kind == "score":
                await _until_done(functools.partial(pipeline.add_score, payload), health)
                if shipper is not None:
                    shipper.wake()
            send(("done", seq, stats_of(pipeline, health, shipper), spent))
            logs.drain()
    finally:
        reporter.cancel()
        if shipper is not None:
            await pipeline.flush()
            await shipper.stop(deadline)
        await pipeline.stop(deadline)
        memprobe.report()  # LLM_SCOPE_MEMPROBE only: what the caches hold (docs/PERFORMANCE.md)
        send(("stats", stats_of(pipeline, health, shipper)))
        logs.drain()
        with contextlib.suppress(Exception):
            await writer.drain()
            writer.close()


def main() -> None:
    # Ctrl+C reaches the whole process group; the gateway decides when this process stops (it says so, or
    # its end of the pipe closes), so that nothing it handed over is cut off half-written.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    out_fd = os.dup(1)
    os.dup2(2, 1)  # a stray print goes to the log, never into the message stream
    asyncio.run(serve(0, out_fd))


if __name__ == "__main__":
    main()
