"""What the gateway and its trace helper process say to each other, and how it is framed on the pipe.

Messages are pickled tuples behind a 4-byte length. Pickle, because both ends are this package and the pipe
is private to the two processes (inherited at spawn, never a socket another process could reach), and it
carries CallRecords as they are: a JSON round trip would cost more than the work the helper takes over.

Gateway → helper: ("init", HelperOptions), then ("records", seq, batch) and ("score", seq, dict),
and finally ("stop", export_deadline). Helper → gateway: ("done", seq, stats) once a message's rows are
committed to SQLite (with the USD spent by model and provider, for the cost metric), in order, and
("stats", stats) now and then. A batch is `dump_rows` pickles of a few records each, one after another:
records are pickled once, as calls finish (see `handoff_queue`), into bytes that go
either on the pipe or, while the helper is behind, into the spill file (see `spill`) and later on the pipe
unchanged: a spilled batch is never decoded and encoded again. Large request bodies (`types.RawInput`) ride
behind the pickled rows, and a large payload behind the pickle of its message, copied once rather than
pickled (issue 20: a coding agent's 85 KB body).
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import operator
import os
import pickle
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..types import CallRecord, Cost, RawInput, Usage

_LENGTH = struct.Struct(">I")
# Records travel as tuples of their fields, in declaration order: pickling a slotted dataclass goes through
# its __getstate__ and costs 2.5x as much (measured), and unpickling one calls dataclasses.fields() every
# time. So do their Usage and Cost. Both processes run the same code, so the orders agree.
_NAMES = [f.name for f in dataclasses.fields(CallRecord)]
_FIELDS = operator.attrgetter(*_NAMES)
_USAGE_AT = _NAMES.index("usage")
_COST_AT = _NAMES.index("cost")
_INPUT_AT = _NAMES.index("input")
_USAGE = operator.attrgetter(*(f.name for f in dataclasses.fields(Usage)))
_COST = operator.attrgetter(*(f.name for f in dataclasses.fields(Cost)))


@dataclass(frozen=True)
class HelperOptions:
    """Everything the helper needs to build its pipeline: it reads no settings of its own."""

    store_path: Path
    langfuse: dict[str, Any] | None  # LangfuseExporter's keyword arguments; None: no export
    secrets: tuple[str, ...]
    trace_content: bool
    max_outbox: int
    retention_days: float
    log_level: str = "INFO"
    log_format: str = "text"
    price_overrides: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # model_info
    otel: dict[str, Any] | None = None  # GenAIExporter's keyword arguments; None: no OpenTelemetry export
    database_url: str | None = None  # PostgreSQL the helper ships the local store to (see shipping)
    nice: int = 0  # added to the helper's nice value at start (LLM_SCOPE_HELPER_NICE)
    idle: bool = False  # the helper runs under SCHED_IDLE (LLM_SCOPE_HELPER_SCHED=idle)
    session_repo: bool = False  # store the repository and branch the tools state (LLM_SCOPE_SESSION_REPO)

    @property
    def outbox_kinds(self) -> tuple[str, ...]:
        """The outbox row kinds each stored call gets: one per exporter (see `lanes`)."""
        return (*(("trace",) if self.langfuse is not None else ()), *(("otel",) if self.otel is not None else ()))


def pack(records: Sequence[CallRecord]) -> list[tuple[Any, ...]]:
    return [_pack(record) for record in records]


def _pack(record: CallRecord) -> tuple[Any, ...]:
    row = list(_FIELDS(record))
    row[_USAGE_AT] = _USAGE(record.usage)
    if record.cost is not None:
        row[_COST_AT] = _COST(record.cost)
    return tuple(row)


def unpack(rows: Sequence[tuple[Any, ...]]) -> list[CallRecord]:
    return [_unpack(row) for row in rows]


def _unpack(row: tuple[Any, ...]) -> CallRecord:
    record = CallRecord(*row)
    record.usage = Usage(*row[_USAGE_AT])
    cost = row[_COST_AT]
    if cost is not None:
        record.cost = Cost(*cost)
    return record


class Pieces(list[bytes]):
    """A batch as the pieces of its chunks, one after another: what `load_rows` reads once they are joined, by
    the pipe or the spill file (its own type, so that a message's last element that merely is a list is never
    taken for one)."""

    @property
    def size(self) -> int:
        return sum(map(len, self))


def batch_bytes(batch: object) -> int:
    """A batch's size, whether one bytes object (read back from the spill file) or `Pieces`."""
    if type(batch) is Pieces:
        return batch.size
    return len(batch) if isinstance(batch, bytes | bytearray) else 0


def joined(batch: bytes | Pieces) -> bytes:
    return batch if isinstance(batch, bytes) else b"".join(batch)


def dump_rows(records: Sequence[CallRecord]) -> bytes:
    """`dump_parts` joined: one chunk as one bytes object."""
    return b"".join(dump_parts(records))


def dump_parts(records: Sequence[CallRecord]) -> list[bytes]:
    """The records' rows pickled, behind their length, then the bodies of the inputs still as bytes (RawInput),
    as pieces: the bodies are the calls' own bytes objects, not copies of them.

    A coding agent's 85 KB body pickled into the rows cost the gateway ~30-50 µs a call (pickle grows its buffer
    by copying, and such buffers are fresh mappings each time: measured); behind them, it is not copied at all
    until the pipe or the spill file takes it (a joined chunk was a second copy of every body while the call's
    own was still alive: issue 20, the worker's peak memory)."""
    rows = pack(records)
    raws: list[tuple[int, str, int]] = []  # (row, family, body length) of each input still as bytes
    bodies: list[bytes] = []
    for i, record in enumerate(records):
        raw = record.input
        if type(raw) is RawInput:
            row = list(rows[i])
            row[_INPUT_AT] = None
            rows[i] = tuple(row)
            body = raw.body
            raws.append((i, raw.family, len(body)))
            bodies.append(body if type(body) is bytes else bytes(body))  # a view's buffer might change: copy
    head = pickle.dumps((rows, raws), protocol=pickle.HIGHEST_PROTOCOL)
    return [_LENGTH.pack(len(head)) + head, *bodies]


def load_rows(blob: bytes | bytearray | memoryview) -> list[CallRecord]:
    """A batch: one or more `dump_rows` chunks one after another (the gateway pickles records a few at a time
    as calls finish and joins them at the hand-over; see `handoff_queue`). A chunk that starts with a pickle's
    PROTO byte is rows as an earlier version wrote them (in a spill file, say): a length prefix starts with
    0x80 only past 2 GB. One unpickler each: a pickle's memo indices count from its own start. Each RawInput's
    body is a view into `blob`, not a copy: copying a session batch's bodies (~150 KB a call) cost the helper
    ~45 µs a call (measured, bench.micro_tracing --session 150); the views go once the bodies are read."""
    records: list[CallRecord] = []
    view = memoryview(blob)
    at = 0
    while at < len(blob):
        if view[at] == 0x80:
            stream = io.BytesIO(blob)
            stream.seek(at)
            records += unpack(pickle.Unpickler(stream).load())
            at = stream.tell()
            continue
        start = at + _LENGTH.size
        at = start + _LENGTH.unpack_from(blob, at)[0]
        rows, raws = pickle.loads(view[start:at])
        chunk = unpack(rows)
        for i, family, length in raws:
            chunk[i].input = RawInput(view[at : at + length], family)
            at += length
        records += chunk
    return records


# Bytes: a message whose last element is a bytes object this long or longer goes with that element behind the
# pickle of the rest (marked by a leading "B", which no pickle starts with), rather than copied into the pickle.
_TRAILER_FROM = 4096


def encode(message: tuple[Any, ...]) -> bytes:
    return b"".join(encode_parts(message))


def encode_parts(message: tuple[Any, ...]) -> list[bytes]:
    """`encode`'s bytes in pieces, the trailer's the last: a writer that takes them apart (a transport's
    writelines) keeps the batch it already holds instead of a joined copy of it (4 MB a batch, issue 20). The
    trailer may come as its pieces already (`Pieces`: a batch's chunks, see `handoff_queue`); the frame on the
    pipe is the same."""
    last = message[-1]
    pieces: list[bytes] | None = None
    if type(last) is Pieces:
        pieces = last
    elif type(last) is bytes and len(last) >= _TRAILER_FROM:
        pieces = [last]
    if pieces is not None:
        head = pickle.dumps(message[:-1], protocol=pickle.HIGHEST_PROTOCOL)
        size = 1 + _LENGTH.size + len(head) + sum(map(len, pieces))
        return [b"".join((_LENGTH.pack(size), b"B", _LENGTH.pack(len(head)), head)), *pieces]
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return [_LENGTH.pack(len(body)) + body]


async def read(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """The next message, or None once the other side has closed the pipe."""
    try:
        header = await reader.readexactly(_LENGTH.size)
        body = await reader.readexactly(_LENGTH.unpack(header)[0])
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return decode(body)


class PipeReader:
    """The gateway's messages, each frame read off the pipe straight into a buffer of its size: the helper's end.

    asyncio's StreamReader copied each batch three times (the transport's read, its buffer, then out of it
    as bytes): with a coding agent's calls a batch is ~150 calls of ~85 KB each, and those copies of fresh
    memory cost the helper more than the read itself (measured: docs/PERFORMANCE.md, issue 20). Here the
    kernel copies each frame once, into the bytearray that `decode` reads and the bodies are views of."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self._fd = fd

    async def read(self) -> tuple[Any, ...] | None:
        """The next message, or None once the other side has closed the pipe (mid-frame included)."""
        header = await self._fill(_LENGTH.size)
        if header is None:
            return None
        body = await self._fill(_LENGTH.unpack(header)[0])
        return None if body is None else decode(body)

    async def _fill(self, size: int) -> bytearray | None:
        buffer = bytearray(size)
        with memoryview(buffer) as view:
            got = 0
            while got < size:
                try:
                    count = os.readv(self._fd, [view[got:]])
                except BlockingIOError:
                    await self._readable()
                    continue
                except ConnectionError:
                    return None
                if count == 0:
                    return None
                got += count
        return buffer

    async def _readable(self) -> None:
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        loop.add_reader(self._fd, _wake, ready)
        try:
            await ready
        finally:
            loop.remove_reader(self._fd)


def _wake(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


def decode(body: bytes | bytearray) -> tuple[Any, ...]:
    """A message from its frame's body (what follows the length); a trailer comes as a view into `body`
    (copying a batch's bodies cost the helper ~45 µs a session-shaped call: measured)."""
    if body[:1] == b"B":  # the last element behind the pickle of the rest (see encode)
        size = _LENGTH.unpack_from(body, 1)[0]
        at = 1 + _LENGTH.size + size
        head: tuple[Any, ...] = pickle.loads(memoryview(body)[1 + _LENGTH.size : at])
        return (*head, memoryview(body)[at:])
    message: tuple[Any, ...] = pickle.loads(body)
    return message


@dataclass
class PipelineStats:
    """Counters the metrics module reads; `lost` must stay 0."""

    submitted: int = 0
    written: int = 0
    exported: int = 0
    export_failures: int = 0
    rejected: int = 0
    lost: int = 0
    backlog: int = 0
