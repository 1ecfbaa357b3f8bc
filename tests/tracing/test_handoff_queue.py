"""Records pickled a few at a time as they are submitted must reach the helper as if pickled in one batch:
every record, in order, field by field, and a batch from an older spill file (one pickled list) still reads."""

from __future__ import annotations

import dataclasses
import threading

from llm_scope.tracing import helper_protocol
from llm_scope.tracing.handoff_queue import CHUNK, SEAL_BYTES, PendingRecords
from llm_scope.types import CallRecord, RawInput

from .test_helper_protocol import full_record


def numbered(n: int) -> CallRecord:
    """Each record its own values, one object of them twice (pickled once, then referred to by its memo
    index), so a record read with another's values (a memo misread across pickles) shows."""
    record = full_record()
    record.trace_id = f"{n:032x}"
    twice = f"value-{n}"
    record.metadata = {f"key-{n}": [n, twice], "again": twice}
    record.input = [{"role": "user", "content": f"prompt {n}"}, {"role": "assistant", "content": "same"}]
    record.requested_model = f"model-{n % 3}"
    return record


def collect(lost: list[tuple[int, str]]) -> PendingRecords:
    return PendingRecords(lambda count, why: lost.append((count, why)))


def test_batches_hold_every_record_in_order_within_the_size() -> None:
    lost: list[tuple[int, str]] = []
    pending = collect(lost)
    total = CHUNK * 5 + 3  # whole chunks and a partial one
    for n in range(total):
        pending.append(numbered(n))
    assert len(pending) == total
    got: list[CallRecord] = []
    while (batch := pending.take(CHUNK * 2)) is not None:
        blob, count = batch
        records = helper_protocol.load_rows(b"".join(blob))
        assert len(records) == count <= CHUNK * 2
        got.extend(records)
    assert [dataclasses.asdict(r) for r in got] == [dataclasses.asdict(numbered(n)) for n in range(total)]
    assert len(pending) == 0 and not pending and lost == []


def test_a_batch_takes_at_least_one_chunk_and_small_bounds_make_small_chunks() -> None:
    pending = PendingRecords(lambda count, why: None, at_most=3)
    for n in range(7):
        pending.append(numbered(n))
    sizes = []
    while (batch := pending.take(1)) is not None:
        sizes.append(batch[1])
        assert len(helper_protocol.load_rows(b"".join(batch[0]))) == batch[1]
    assert sizes == [3, 3, 1]


def test_one_record_that_cannot_be_pickled_is_the_only_one_lost() -> None:
    lost: list[tuple[int, str]] = []
    pending = collect(lost)
    for n in range(CHUNK):
        record = numbered(n)
        if n == 5:
            record.metadata = {"lock": threading.Lock()}  # pickle refuses it
        pending.append(record)
    batch = pending.take(10_000)
    assert batch is not None
    records = helper_protocol.load_rows(b"".join(batch[0]))
    assert batch[1] == len(records) == CHUNK - 1
    assert [r.trace_id for r in records] == [f"{n:032x}" for n in range(CHUNK) if n != 5]
    assert lost == [(1, "trace records could not be encoded")]
    assert len(pending) == 0


def test_a_batch_pickled_whole_reads_the_same() -> None:
    """What earlier versions wrote to the spill file: one pickle of the whole batch."""
    records = [numbered(n) for n in range(40)]
    got = helper_protocol.load_rows(helper_protocol.dump_rows(records))
    assert [dataclasses.asdict(r) for r in got] == [dataclasses.asdict(r) for r in records]


def test_big_bodies_seal_a_chunk_early_and_count_in_bytes_until_taken() -> None:
    pending = collect([])
    small = numbered(0)
    pending.append(small)
    assert pending.bytes == 0  # a short call waits for its chunk's other records
    big = numbered(1)
    big.input = RawInput(b"x" * SEAL_BYTES, "chat")
    pending.append(big)  # one coding agent's body is enough to seal the chunk: the bound in bytes sees it
    assert len(pending) == 2 and pending.bytes > SEAL_BYTES
    blob, count = pending.take(CHUNK)
    assert count == 2 and pending.bytes == 0 and blob.size > SEAL_BYTES
    assert blob[-1] is big.input.body  # the call's own bytes ride in the batch: not a copy of them
    records = helper_protocol.load_rows(b"".join(blob))
    assert [r.trace_id for r in records] == [small.trace_id, big.trace_id]
    assert isinstance(records[1].input, RawInput) and records[1].input.body == b"x" * SEAL_BYTES
