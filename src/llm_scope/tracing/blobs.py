"""Each distinct input block stored once, in both trace stores: the `blobs` table and a call's `input_refs`.

A traces row of a call with content keeps its record with "input" null and, in `input_refs`, the input's
refs (see `blocks`); each block's JSON is a `blobs` row keyed by its key. A coding agent's call then adds
its new turn and a few KB of refs instead of its whole conversation (issue 20). Rows written before this
(input_refs NULL) keep their input inline and read as they always did: nothing is rewritten.

Garbage: a block is kept while a call that may refer to it is kept. Writing a block renews its `seen` to
the time of the write when it is older than TRUST (so a block in use is rewritten about once an hour, not
on every call), and a writer that skips a block because it wrote it lately (`BlockWriter`, per process)
trusts that memory for TRUST seconds only. A call written at time w started before w, so each of its blocks
has seen >= w - 2 TRUST >= its start - 2 TRUST. The retention sweep deletes the calls before the cutoff,
then the blocks whose seen is before the oldest call kept less 2 TRUST and a margin for clocks: one indexed
range delete, whatever the store's size, never a block that a kept call or a writer's memory refers to.
An upsert locks the row it finds, so in PostgreSQL a sweep running at the same moment waits for the write's
transaction and then keeps the row.
"""

from __future__ import annotations

import functools
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from itertools import filterfalse
from typing import Any

from .. import jsoncodec
from ..types import CallRecord
from .blocks import Refs, assemble, blocks, flat, refs_of
from .records import IN_COLUMNS, record_to_json, short_input_json, with_columns
from .storage import TraceStore

TRUST = 3600.0  # seconds a writer skips a block it wrote, before writing it again (which renews `seen`)
MARGIN = 3600.0  # for clocks: the sweep keeps blocks seen this much earlier than it strictly must
# Bytes of keys a writer remembers: KEY_BYTES each (the key's str, a float, an OrderedDict entry and table
# share: 159-174 measured filling 2,000 to 60,000, ~209 under churn; checked by
# tests/tracing/test_cache_budgets.py), so ~25,200 keys: ~250 agent conversations within TRUST.
BUDGET = 6 * 1024 * 1024
KEY_BYTES = 250
LIMIT = BUDGET // KEY_BYTES
_READ_CHUNK = 500  # keys per read query
_FEW = 8  # new blocks of a call looked up by their key's place (list.index) rather than walked with the rest

SQLITE_MIGRATION = """
    ALTER TABLE traces ADD COLUMN input_refs TEXT;
    CREATE TABLE blobs (digest TEXT PRIMARY KEY, body TEXT NOT NULL, seen REAL NOT NULL);
    CREATE INDEX blobs_seen ON blobs(seen);
"""
POSTGRES_MIGRATION = """
    ALTER TABLE traces ADD COLUMN input_refs TEXT;
    CREATE TABLE blobs (digest TEXT PRIMARY KEY, body TEXT NOT NULL, seen DOUBLE PRECISION NOT NULL);
    CREATE INDEX blobs_seen ON blobs(seen);
"""
SWEEP = f"DELETE FROM blobs WHERE seen < (SELECT MIN(start_time) FROM traces) - {2 * TRUST + MARGIN}"


@functools.cache
def upsert_sql(rows: int) -> str:
    """Blocks (key, JSON, seen) in; a block already there keeps its body, and its seen unless that is older
    than TRUST."""
    return (
        "INSERT INTO blobs (digest, body, seen) VALUES " + ",".join(["(?,?,?)"] * rows) + " ON CONFLICT (digest) DO "
        f"UPDATE SET seen = excluded.seen WHERE blobs.seen < excluded.seen - {TRUST}"
    )


def stored_row(
    record: CallRecord, pending: dict[str, str], skip: Mapping[str, Any] | None = None
) -> tuple[str, str | None]:
    """(record JSON, refs JSON) for the call's traces row, the record less the fields its columns hold
    (records.IN_COLUMNS); its blocks not in `skip` (or `pending`) are added to `pending` as key -> JSON. A
    call without content, or with a short input, keeps it in the record, refs NULL."""
    value = record.input
    if value is None or short_input_json(value) is not None:  # kept inline: see records.INLINE_MAX
        return record_to_json(record, in_columns=True), None
    refs = refs_of(value)
    keys = flat(refs)
    fresh = keys if skip is None else list(filterfalse(skip.__contains__, keys))  # C-level: ~70 keys a call
    if len(fresh) <= _FEW:  # a coding agent's call: its new turn only, each found by its key's place
        for key in fresh:
            if key not in pending:
                pending[key] = jsoncodec.dumps_str(_block_at(value, refs, key))
    else:
        for key, block in zip(keys, blocks(value), strict=True):
            if key not in pending and (skip is None or key not in skip):
                pending[key] = jsoncodec.dumps_str(block)
    return record_to_json(record, with_input=False, in_columns=True), jsoncodec.dumps_str(refs)


def _block_at(value: Any, refs: Refs, key: str) -> Any:
    """The block of `value` whose key in `refs` (its shape: see `blocks`) is `key`, which refs holds."""
    if isinstance(refs, list):
        return value[refs.index(key)]
    if isinstance(refs, dict):
        for name, keys in refs.items():
            if keys == key:
                return value[name]
            if isinstance(keys, list) and key in keys:
                return value[name][keys.index(key)]
        raise KeyError(key)
    return value


class BlockWriter:
    """The blocks this process wrote lately (key -> when), so a call writes only its new ones (SQLite)."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self._written: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()  # its own: held for dict updates only, never across SQLite's work

    def __len__(self) -> int:
        return len(self._written)

    def trusted(self, now: float) -> Mapping[str, float]:
        """What a batch may skip now: the keys written within TRUST seconds (oldest first, so cut there).

        Only `wrote` adds keys, after its batch committed: a block is skipped only once it is stored."""
        with self._lock:
            written = self._written
            while written and now - next(iter(written.values())) > TRUST:
                written.popitem(last=False)
            return written

    def wrote(self, keys: Iterable[str], now: float) -> None:
        with self._lock:
            written = self._written
            for key in keys:
                written.pop(key, None)
                written[key] = now
            while len(written) > self.limit:
                written.popitem(last=False)


def blob_params(pending: Mapping[str, str], now: float) -> list[tuple[int, list[Any]]]:
    """(rows, parameters) of the upserts for `pending`, in key order (writers lock rows in one order), in
    chunks of sizes whose statements are compiled once."""
    out: list[tuple[int, list[Any]]] = []
    items = sorted(pending.items())
    start = 0
    for size in (256, 64, 16, 4, 1):
        while len(items) - start >= size:
            params: list[Any] = []
            for key, body in items[start : start + size]:
                params += (key, body, now)
            out.append((size, params))
            start += size
    return out


def bodies(store: TraceStore, keys: Iterable[str]) -> dict[str, str]:
    """Stored blocks' JSON by key (a key not stored is absent)."""
    wanted = sorted(set(keys))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), _READ_CHUNK):
        chunk = wanted[start : start + _READ_CHUNK]
        sql = f"SELECT digest, body FROM blobs WHERE digest IN ({','.join('?' * len(chunk))})"
        found.update((row["digest"], row["body"]) for row in store.query(sql, chunk))
    return found


def fill_inputs(store: TraceStore, records: Sequence[dict[str, Any]], refs: Sequence[Any]) -> None:
    """Put each stored record's input back from its refs (parsed; None for a record stored whole).

    The text is the blocks' stored JSON joined as the whole input's JSON would be, parsed once: the value
    is the one a record stored whole gives. A block that is missing (it cannot be, short of a damaged
    store) leaves the input unknown (None) rather than wrong.
    """
    found = bodies(store, (key for r in refs if r is not None for key in flat(r)))
    for record, r in zip(records, refs, strict=True):
        if r is not None:
            try:
                record["input"] = json.loads(assemble(r, found.__getitem__))  # as a record stored whole
            except KeyError:
                record["input"] = None


def record_of(store: TraceStore, row: dict[str, Any]) -> dict[str, Any]:
    """A traces row's record as a dict, its input put back, and the fields its columns hold where the row
    has them (records.IN_COLUMNS); pops `record` and `input_refs` off the row."""
    record: dict[str, Any] = json.loads(row.pop("record"))
    refs = row.pop("input_refs", None)
    if refs is not None:
        fill_inputs(store, [record], [json.loads(refs)])
    if all(name in row for name in IN_COLUMNS):
        with_columns(record, [row[name] for name in IN_COLUMNS])
    return record
