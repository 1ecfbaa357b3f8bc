"""CPU per call of the trace helper's per-record work: `python -m bench.micro_tracing`.

The budget is CPU per request over every process of the gateway, the trace helper included, so the helper's
per-record work counts as much as the request path's. This replays what the helper does for each batch
(enrich, write, pending + acknowledge as the exporter does, the per-call log line in both formats as the
helper writes it) on realistic records, single-threaded, with the database growing as it would, and prints
CPU µs per record (time.process_time), after a gc.freeze() as at start-up. Also the hand-over on the pipe
(the gateway's pack + pickle, the helper's unpickle + unpack) and the Langfuse export's encoding (OTLP
spans, then gzip), the HTTP round trip excepted. Each run uses a fresh database; the best of `--repeat`
runs is reported, since the machine may be busy with other work. `--prompt-kb 150` makes each call carry a
150 KB prompt (the same one every call) instead of one short sentence; `--session 150` makes the calls
bench.session's coding-agent conversations (growing to 150 KB, ~35 messages, each call mostly the last one's
messages again).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from llm_scope.accounting.cost import Prices, lookup_prices, price_table
from llm_scope.http.entry import TraceIds
from llm_scope.http.handlers import RAW_INPUT_MIN
from llm_scope.logs import BatchedStream, CallLines, configure_logging
from llm_scope.tracing import helper_protocol
from llm_scope.tracing.autosession import SessionRuns
from llm_scope.tracing.bodyblocks import BodyBlocks
from llm_scope.tracing.callfacts import note
from llm_scope.tracing.langfuse import MAX_REQUEST_BYTES
from llm_scope.tracing.otlp import RecordEncoder
from llm_scope.tracing.records import enrich
from llm_scope.tracing.splice import gzip_spliced, size_of
from llm_scope.tracing.store import Store
from llm_scope.types import CallRecord, RawInput, Usage

SECRETS = ["sk-upstream-4f8a1c2e9b7d6a5f3e2d1c0b", "ls-master-key-0c9d8e7f6a5b4c3d"]
STEPS = (
    "pipe out (gateway)",
    "pipe in",
    "session facts",
    "enrich",
    "write",
    "pending+acknowledge",
    "log text",
    "log json",
    "otlp encode",
    "gzip",
)
# Not part of a call's cost while the exporter keeps up (it sends the records it still holds), but what a
# backlog costs per record: after a restart, a Langfuse outage, or another worker's rows.
READ_BACK = "pending, read back"


TRACE_IDS = TraceIds()  # ids as the gateway mints them: their order decides how the store's index grows


PROMPT = ["Say hello in one short sentence."]
SESSION: list[Iterator[list[Any]]] = []  # with --session: a coding agent's calls, turn after turn


def session_inputs(kb: float) -> Iterator[Any]:
    """Each call's input as the gateway hands bench.session's calls over: conversations growing to `kb`, one
    after another; a body from RAW_INPUT_MIN on as its bytes (read back by the helper's BodyBlocks, in "pipe
    in"), a shorter one as its messages parsed afresh (nothing shared between calls but equal values)."""
    from bench.session import conversation

    for n in itertools.count():
        for body in conversation(f"micro-{n}", kb):
            yield RawInput(body, "chat") if len(body) >= RAW_INPUT_MIN else json.loads(body)["messages"]


def make_record() -> CallRecord:
    start = time.time() - 0.4
    return CallRecord(
        trace_id=TRACE_IDS.new(),
        route="chat_completion",
        start_time=start,
        end_time=start + 0.35,
        client="python-httpx/0.28",
        requested_model="gpt-4o-mini",
        resolved_model="gpt-4o-mini",
        provider="openai",
        model_parameters={"max_tokens": 32},
        input=next(SESSION[0]) if SESSION else [{"role": "user", "content": PROMPT[0]}],
        output={"role": "assistant", "content": "Hello! How can I help?"},
        usage=Usage(input=12, output=9, total=21),
        upstream_latency=0.33,
        finish_reason="stop",
    )


def app_prices_for() -> Callable[[CallRecord], Prices | None]:
    """Shaped like the app's: config overrides first (none here), then LiteLLM's table."""
    overrides: dict[str, Prices] = {}
    patterns: list[str] = []

    def prices_for(record: CallRecord) -> Prices | None:
        name = record.requested_model
        configured = overrides.get(name) or next((overrides[p] for p in patterns if p == name), None)
        return configured or lookup_prices(record.resolved_model, record.provider, price_table())

    return prices_for


def log_lines(fmt: str) -> Callable[[list[CallRecord]], None]:
    """The trace helper's call lines in `fmt`, as it writes them (CallLines into a BatchedStream, drained
    once per batch), to /dev/null: the figures are our formatting and one write per batch."""
    stream = BatchedStream(os.open(os.devnull, os.O_WRONLY))
    configure_logging("INFO", fmt, stream)
    lines = CallLines(fmt, stream)

    def write(batch: list[CallRecord]) -> None:
        lines.write(batch)
        stream.drain()

    return write


def one_run(total: int, batch_size: int, stored: int = 0, facts: bool = True) -> dict[str, float]:
    """CPU seconds per step over `total` records; the outbox is drained after each batch, as when Langfuse keeps up."""
    prices_for = app_prices_for()
    price_table()
    gc.collect()
    gc.freeze()  # as the app does once started: long-lived start-up objects stay out of every GC pass
    spent = dict.fromkeys((*STEPS, READ_BACK), 0.0)
    encoder = RecordEncoder(environment="bench", release="0")
    bodies = BodyBlocks()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        for _ in range(stored // 2000):  # a store that has been in use: its indexes outgrow SQLite's cache
            store.write([make_record() for _ in range(2000)], outbox=False, max_outbox=0)
        if facts:  # fallback sessions and re-sends, in the write's transaction (counted in "write")
            store.prepare = SessionRuns().assign
        try:
            for _ in range(total // batch_size):
                batch = [make_record() for _ in range(batch_size)]
                p0 = time.process_time()
                message = helper_protocol.encode(("records", 1, helper_protocol.dump_rows(batch)))
                p1 = time.process_time()
                body = helper_protocol.decode(message[4:])
                batch = helper_protocol.load_rows(body[2])
                for record in batch:  # as the pipeline does first
                    if type(record.input) is RawInput:
                        record.input = bodies.input_of(record.input)
                f0 = time.process_time()
                for record in batch if facts else ():
                    note(record)
                t0 = time.process_time()
                for record in batch:
                    enrich(record, prices_for=prices_for, secrets=SECRETS, trace_content=True)
                t1 = time.process_time()
                store.write(batch, outbox=True, max_outbox=2_000_000)
                t2 = time.process_time()
                rows = store.pending(batch_size, {record.trace_id: record for record in batch})
                store.acknowledge([ident for ident, _, _ in rows])
                t3 = time.process_time()
                assert len(rows) == batch_size and all(item is not None for _, _, item in rows)
                store.write(batch, outbox=True, max_outbox=2_000_000)
                r0 = time.process_time()
                again = store.pending(batch_size)
                spent[READ_BACK] += time.process_time() - r0
                store.acknowledge([ident for ident, _, _ in again])
                text_lines, json_lines = log_lines("text"), log_lines("json")
                t4 = time.process_time()
                text_lines(batch)
                t5 = time.process_time()
                json_lines(batch)
                t6 = time.process_time()
                spans = [encoder.record_parts(record) for record in batch]
                t7 = time.process_time()
                chunk, size = [], 0  # as exporting.gzipped_chunks does: requests of at most MAX_REQUEST_BYTES
                for span in spans:
                    length = size_of(span)
                    if chunk and size + length > MAX_REQUEST_BYTES:
                        gzip_spliced(encoder.request_parts(chunk))
                        chunk, size = [], 0
                    chunk.append(span)
                    size += length
                gzip_spliced(encoder.request_parts(chunk))
                t8 = time.process_time()
                times = (p1 - p0, f0 - p1, t0 - f0, t1 - t0, t2 - t1, t3 - t2, t5 - t4, t6 - t5, t7 - t6, t8 - t7)
                for step, seconds in zip(STEPS, times, strict=True):
                    spent[step] += seconds
        finally:
            store.close()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000, help="records per run (the database grows to this)")
    parser.add_argument("--batch", type=int, default=500, help="records per batch (the pipeline's batch_size)")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best per step is reported")
    parser.add_argument("--stored", type=int, default=0, help="traces already in the store before measuring")
    parser.add_argument("--no-session-facts", action="store_true", help="without callfacts/autosession")
    parser.add_argument("--prompt-kb", type=float, default=0, help="a prompt of this many KB (default: one sentence)")
    parser.add_argument("--session", type=float, default=0, help="bench.session's calls, conversations to this KB")
    args = parser.parse_args()
    if args.session:
        SESSION.append(session_inputs(args.session))
    if args.prompt_kb:
        PROMPT[0] = ("You are a coding agent. Here is the file you asked for:\n" * 64)[:1024] * int(args.prompt_kb)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        runs = [one_run(args.records, args.batch, args.stored, not args.no_session_facts) for _ in range(args.repeat)]
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    count = args.records // args.batch * args.batch
    print(
        f"CPU µs per record (best of {args.repeat} runs, {count} records in batches of {args.batch}, "
        f"{args.stored} traces stored before)"
    )
    for step in STEPS:
        print(f"  {step:<20} {min(run[step] for run in runs) / count * 1e6:8.1f}")
    best = min(sum(run[step] for step in STEPS if step != "log json") for run in runs)
    print(f"  {'total':<20} {best / count * 1e6:8.1f}")
    print("  (total: every step but 'log json', as a helper writes one format)")
    print(f"  ({READ_BACK}: {min(run[READ_BACK] for run in runs) / count * 1e6:.1f}, when the exporter is behind)")


if __name__ == "__main__":
    main()
