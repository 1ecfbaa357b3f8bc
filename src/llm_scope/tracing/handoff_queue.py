"""The records waiting to be handed to the trace helper, pickled a few at a time as calls finish.

Pickling a whole tick's records at once, when they went to the helper, stalled the event loop 1-3 ms every
0.2 s at concurrency 1 (a request that arrived meanwhile waited for it: that was the added p99). Here every
`CHUNK` records submitted are pickled right away, into one chunk of their own: the pickling is spread over
the calls (8 of the benchmark's records take ~0.05 ms at once, ~3% more CPU than one pickle per batch,
measured), and what the tick does is put chunks together into one message. The records themselves die at
once, instead of living on to a GC pass that has to scan them.

A batch is its chunks one after another, kept as their pieces (`helper_protocol.Pieces`: each chunk's pickled
rows and the calls' own body bytes behind them), never joined here: the pipe's writelines and the spill
file's writev take them as they are (joining them was a second copy of every batch, ~4 MB each under a coding
agent's traffic, at the worker's peak: issue 20); `helper_protocol.load_rows` reads pickles until the end, so the
helper reads a batch the same way whether it comes from the pipe or the spill file, and one pickled list
(what earlier versions spilled) is a batch of one chunk.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable

from ..types import CallRecord, RawInput
from . import helper_protocol

log = logging.getLogger("llm_scope.tracing")
CHUNK = 8  # records per pickle: small enough to keep each one short, large enough to cost what a batch did
# Bodies waiting unpickled that seal a chunk before it has `CHUNK` records: `bytes` then counts a coding agent's
# calls (50-200 KB each) as they finish, for the hand-over's bound in bytes (see `handoff`).
SEAL_BYTES = 256 << 10


class PendingRecords:
    """Submitted records, pickled in chunks of `CHUNK` (or `at_most`), taken as batches; `len` counts records."""

    def __init__(self, on_lost: Callable[[int, str], None], at_most: int = CHUNK) -> None:
        self._on_lost = on_lost
        self._chunk = max(1, min(CHUNK, at_most))
        self._loose: list[CallRecord] = []  # fewer than a chunk, not pickled yet
        self._loose_bytes = 0  # their raw request bodies
        self._chunks: collections.deque[tuple[list[bytes], int, int]] = collections.deque()  # (pieces, bytes, records)
        self._sealed = 0  # records in `_chunks`
        self.bytes = 0  # in `_chunks`: what the hand-over's bound in bytes counts

    def __len__(self) -> int:
        return self._sealed + len(self._loose)

    def __bool__(self) -> bool:
        return bool(self._chunks or self._loose)

    def append(self, record: CallRecord) -> None:
        loose = self._loose
        loose.append(record)
        if type(record.input) is RawInput:
            self._loose_bytes += len(record.input.body)
        if len(loose) >= self._chunk or self._loose_bytes >= SEAL_BYTES:
            self._seal()

    def take(self, most: int) -> tuple[helper_protocol.Pieces, int] | None:
        """Whole chunks, up to `most` records (at least one chunk), as one batch: (its pieces, records)."""
        if self._loose:
            self._seal()
        chunks = self._chunks
        if not chunks:
            return None
        parts, size, count = chunks.popleft()
        batch = helper_protocol.Pieces(parts)
        while chunks and count + chunks[0][2] <= most:
            parts, more, n = chunks.popleft()
            batch += parts
            size += more
            count += n
        self._sealed -= count
        self.bytes -= size
        return batch, count

    def _seal(self) -> None:
        records, self._loose, self._loose_bytes = self._loose, [], 0
        try:
            self._add(helper_protocol.dump_parts(records), len(records))
        except Exception:  # something in a record pickle cannot take: lose that record, loudly, not the others
            log.exception("trace records could not be encoded for the helper; dropping the ones that fail")
            lost = 0
            for record in records:
                try:
                    one = helper_protocol.dump_parts([record])
                except Exception:
                    lost += 1
                    continue
                self._add(one, 1)
            self._on_lost(lost, "trace records could not be encoded")

    def _add(self, parts: list[bytes], count: int) -> None:
        size = sum(map(len, parts))
        self._chunks.append((parts, size, count))
        self._sealed += count
        self.bytes += size
