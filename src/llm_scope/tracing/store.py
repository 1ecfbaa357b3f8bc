"""The embedded local store: SQLite in the data dir, holding every call and the export outbox.

One file, WAL mode, migrations as an ordered list (simonw/llm's habit). The outbox lives in the same
database as the traces so a call is stored and queued for Langfuse in one transaction: after a restart,
whatever Langfuse has not acknowledged is still there. All methods are synchronous; the pipeline runs
them on its own thread.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

from .. import jsoncodec
from ..types import CallRecord
from . import blobs, traceinsert
from .autosession import Prepare
from .callfacts import COLUMNS as FACT_COLUMNS
from .records import COST_PARTS, IN_COLUMNS, record_from_dict, summary_values, with_columns
from .records import SUMMARY_COLUMNS as _SUMMARY
from .shipcursor import ShippingCursor
from .storage import SCORE_COLUMNS, SQLITE, score_row
from .writelock import WriteLock

MIGRATIONS: list[str] = [
    """
    CREATE TABLE traces (
        trace_id TEXT PRIMARY KEY, start_time REAL NOT NULL, end_time REAL, route TEXT,
        user_id TEXT, session_id TEXT, client TEXT, requested_model TEXT, resolved_model TEXT, provider TEXT,
        status_code INTEGER, error_type TEXT, stream INTEGER,
        input_tokens INTEGER, output_tokens INTEGER, total_tokens INTEGER, cache_read_tokens INTEGER,
        cache_write_tokens INTEGER, reasoning_tokens INTEGER,
        cost_input REAL, cost_output REAL, cost_total REAL,
        duration_ms REAL, ttft_ms REAL, upstream_ms REAL, record TEXT NOT NULL
    );
    CREATE INDEX traces_start ON traces(start_time);
    CREATE INDEX traces_user ON traces(user_id, start_time);
    CREATE INDEX traces_session ON traces(session_id, start_time);
    CREATE INDEX traces_model ON traces(resolved_model, start_time);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, trace_id TEXT NOT NULL,
        payload TEXT NOT NULL, created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE scores (
        id TEXT PRIMARY KEY, trace_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
        data_type TEXT NOT NULL, comment TEXT, created REAL NOT NULL
    );
    CREATE INDEX scores_trace ON scores(trace_id);
    """,
    """
    ALTER TABLE traces ADD COLUMN key_id TEXT;
    CREATE INDEX traces_key ON traces(key_id, start_time);
    """,
    """
    CREATE TABLE outbox_v3 (
        id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, trace_id TEXT NOT NULL,
        payload TEXT, created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO outbox_v3 SELECT id, kind, trace_id, payload, created, attempts FROM outbox;
    DROP TABLE outbox;
    ALTER TABLE outbox_v3 RENAME TO outbox;
    """,
    """
    CREATE TABLE shipping (
        target TEXT PRIMARY KEY, traces INTEGER NOT NULL DEFAULT 0, scores INTEGER NOT NULL DEFAULT 0
    );
    """,
    # One lane per exporter reads its own kinds of rows: without this, a lane that keeps up would scan past
    # every row another lane (a backend that is down) leaves behind.
    """
    CREATE INDEX outbox_kind ON outbox(kind, id);
    """,
    blobs.SQLITE_MIGRATION,  # each distinct input block once; rows before it keep their input inline
    # Each call's cost parts (records.SUMMARY_COLUMNS), from the record of older calls (with a NaN: NULL, unknown).
    "".join(f"ALTER TABLE traces ADD COLUMN cost_{p} REAL;" for p in COST_PARTS)
    + "UPDATE traces SET "
    + ",".join(f"cost_{p} = COALESCE(json_extract(record, '$.cost.{p}'), 0)" for p in COST_PARTS)
    + " WHERE cost_total IS NOT NULL AND CASE WHEN json_valid(record) THEN json_type(record, '$.cost') = 'object' END",
    # Session facts (callfacts, autosession); `traces_auto` finds a fallback session's open run.
    "".join(f"ALTER TABLE traces ADD COLUMN {name} {kind};" for name, kind in FACT_COLUMNS)
    + "CREATE INDEX traces_auto ON traces(client, start_time) WHERE session_derived = 1;",
]

SUMMARY_COLUMNS = list(_SUMMARY)
# Trace rows carry no payload: the exporter reads the record from `traces` (half the bytes written).
_INSERT_OUTBOX = "INSERT INTO outbox (kind, trace_id, payload, created) SELECT ?, value, NULL, ? FROM json_each(?)"
# A stored record's fields kept in its columns (records.IN_COLUMNS), as JSON: json_quote writes a REAL with 15
# digits, quote() with as many as it takes to read back the same double.
_IN_COLUMNS_JSON = " || ',' || ".join(
    f"CASE typeof(t.{c}) WHEN 'real' THEN quote(t.{c}) ELSE json_quote(t.{c}) END" for c in IN_COLUMNS
)


# The oldest undelivered rows as one JSON array of [id, kind, trace id, payload or null or [record, its input's
# refs, its columns' fields…]], built by string concatenation of the stored JSON (SQLite's json() would reparse
# every record and rejects the NaN a record may hold): one row, one sqlite3_step, and one parse in Python for
# the whole batch. A record the caller still holds in memory (by trace id, the first parameter) comes back as
# the JSON string "known" instead: nothing to copy out of SQLite, parse and rebuild.


@functools.cache
def _pending_sql(kinds: int) -> str:
    """Each kind's oldest rows come off the (kind, id) index in id order, so a lane finds its rows at once
    however many another lane (a backend that is down) has left in front of them; merged by id. A pruned
    record is told by its id missing from the join, which the id index answers: SQLite seeks a known
    record's row (its record, its columns) only for what it reads, and a known one it does not read."""
    each = "SELECT * FROM (SELECT id, kind, trace_id, payload FROM outbox WHERE kind = ? ORDER BY id LIMIT ?)"
    return (
        "SELECT '[' || group_concat(item) || ']' FROM ("
        "SELECT '[' || o.id || ',' || json_quote(o.kind) || ',' || json_quote(o.trace_id) || ',' || CASE"
        " WHEN o.payload IS NOT NULL THEN o.payload WHEN t.trace_id IS NULL THEN 'null'"
        " WHEN o.trace_id IN (SELECT value FROM json_each(?)) THEN '\"known\"'"
        " ELSE '[' || t.record || ',' || COALESCE(t.input_refs, 'null') || ',' || "
        f"{_IN_COLUMNS_JSON} || ']' END || ']' AS item"
        f" FROM ({' UNION ALL '.join([each] * kinds)}) o"
        " LEFT JOIN traces t ON o.payload IS NULL AND t.trace_id = o.trace_id ORDER BY o.id LIMIT ?)"
    )


# Rows with a payload (scores) carry it; the others (one per exporter and call) point at the stored record.
ALL_KINDS = ("trace", "score", "otel")
_KNOWN = "known"
_INT64 = range(-(2**63), 2**63)


def _bindable(value: Any) -> Any:
    """What the JSON the store used to go through made of a value SQLite cannot bind (rare: see write)."""
    if value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int):
        return value if value in _INT64 else float(value)
    return str(value)


_first = itemgetter(0)


def _built(kind: str, item: Any) -> Any:
    return record_from_dict(item) if kind != "score" and item is not None else item


class Store(ShippingCursor):
    dialect = SQLITE

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._writes = WriteLock(path)  # writers queue in the kernel, not in SQLite's sleeping busy handler
        self.prepare: Prepare | None = None  # changes records in `write`'s transaction (autosession)
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA busy_timeout=5000")  # first: workers open the same file at the same moment
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        most = self.db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // traceinsert.WIDTH  # 999 before 3.32
        self._chunks = tuple(size for size in traceinsert.CHUNKS if size <= most)
        self._blocks = blobs.BlockWriter()
        self._migrate()

    def _migrate(self) -> None:
        """Apply pending migrations in one IMMEDIATE transaction, so workers starting together don't race."""
        with self._lock, self._writes.held():
            self.db.execute("BEGIN IMMEDIATE")
            try:
                version = self.db.execute("PRAGMA user_version").fetchone()[0]
                for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                    for statement in filter(str.strip, script.split(";")):
                        self.db.execute(statement)
                    self.db.execute(f"PRAGMA user_version={number}")
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self.db.close()
            self._writes.close()

    # --- writes ----------------------------------------------------------------------------------------

    def write(
        self, records: Sequence[CallRecord], *, outbox: bool, max_outbox: int, kinds: Sequence[str] = ("trace",)
    ) -> int:
        """Store records and, when exporting, queue them (a row of each of `kinds`, one per exporter); returns
        how many outbox rows were dropped.

        A few statements per batch, rows bound as parameters of multi-row INSERTs: executemany would
        release and re-take the GIL at every row, and against a busy event loop each re-take can wait a
        whole switch interval, which starved the writer under load. Binding also spares encoding the batch
        as JSON and SQLite reparsing it column by column.
        """
        if not records:
            return 0
        pending: dict[str, str] = {}  # the blocks to write: new, or not written by this process lately
        now = time.time()
        skip = self._blocks.trusted(now)
        with self._lock, self._writes.held():
            self.db.execute("BEGIN IMMEDIATE")
            try:
                if self.prepare is not None:  # no other writer commits between its reads and these rows
                    self.prepare(records, lambda sql, args: [tuple(r) for r in self.db.execute(sql, args)])
                # After `prepare`, which may give a record its session. Each row in the narrow form where it
                # can (see traceinsert), so the batch's rows go in two runs (rowids follow that order); all
                # in the wide form, in order, where a trace id comes twice: the last one is the one kept.
                narrow, wide = traceinsert.split(
                    ((*summary_values(record), *blobs.stored_row(record, pending, skip)) for record in records),
                    ordered=len({record.trace_id for record in records}) < len(records),
                )
                for size, values in blobs.blob_params(pending, now):
                    self.db.execute(blobs.upsert_sql(size), values)
                for form, params in ((True, narrow), (False, wide)):
                    for sql, values in traceinsert.statements(params, form, self._chunks):
                        self._insert(sql, values)
                dropped = 0
                if outbox and kinds:
                    ids = jsoncodec.dumps_str([record.trace_id for record in records])
                    now = time.time()
                    for kind in kinds:
                        self.db.execute(_INSERT_OUTBOX, (kind, now, ids))
                    dropped = self._bound_outbox(max_outbox)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self._blocks.wrote(pending, now)
        return dropped

    def _insert(self, sql: str, params: list[Any]) -> None:
        try:
            self.db.execute(sql, params)
        except (OverflowError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
            # A token count beyond 64 bits, or a value of an odd type: binding fails before anything runs.
            # Store them as the JSON path did (a REAL, the text of the value) rather than fail the batch.
            self.db.execute(sql, [_bindable(value) for value in params])

    def _bound_outbox(self, max_rows: int) -> int:
        """Ids only grow and deliveries remove the oldest, so the id span bounds the count in O(log n)."""
        low, high = self.db.execute("SELECT MIN(id), MAX(id) FROM outbox").fetchone()
        if low is None or high - low + 1 <= max_rows:
            return 0
        count = self.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        excess = count - max_rows
        if excess <= 0:
            return 0
        self.db.execute("DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)", (excess,))
        return int(excess)

    def add_score(self, score: dict[str, Any], *, outbox_payload: str | None) -> None:
        with self._lock, self._writes.held():
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute(
                    f"INSERT OR REPLACE INTO scores ({SCORE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", score_row(score)
                )
                if outbox_payload is not None:
                    self.db.execute(
                        "INSERT INTO outbox (kind, trace_id, payload, created) VALUES ('score', ?, ?, ?)",
                        (score["traceId"], outbox_payload, time.time()),
                    )
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    # --- outbox ----------------------------------------------------------------------------------------

    def pending(
        self, limit: int, known: Mapping[str, CallRecord] | None = None, *, kinds: Sequence[str] = ALL_KINDS
    ) -> list[tuple[int, str, Any]]:
        """The oldest undelivered rows, decoded here on the store's thread: (id, kind, CallRecord | score).

        A trace row points at its stored record; one whose record was pruned meanwhile comes back as None.
        The whole batch is one row, so fetching it takes one GIL hand-off however many rows it holds.
        `known` maps trace ids to records the caller wrote moments ago and still holds: those are returned
        as they are instead of being read back and rebuilt (most of this method's cost).
        """
        try:
            with self._lock:
                held = jsoncodec.dumps_str(list(known or ()))
                params = [held, *(value for kind in kinds for value in (kind, limit)), limit]
                text = self.db.execute(_pending_sql(len(kinds)), params).fetchone()[0]
        except sqlite3.DataError:  # over SQLite's 1 GB string limit (records of huge prompts): row by row
            return self._pending_rows(limit, kinds)
        if text is None:
            return []
        # The standard library, not jsoncodec: it is exact for integers beyond 64 bits and NaN by itself, and
        # here cheaper than orjson plus jsoncodec's walk over every parsed node hunting for such integers.
        items = json.loads(text)
        items.sort(key=_first)  # already in id order in practice; SQL does not promise it for aggregates
        split = [item for item in items if isinstance(item[3], list)]  # [record, its input's refs, columns…]
        if split:
            blobs.fill_inputs(self, [item[3][0] for item in split], [item[3][1] for item in split])
            for item in split:
                item[3] = with_columns(item[3][0], item[3][2:])
        return [
            (ident, kind, known[trace_id] if known and item == _KNOWN and kind != "score" else _built(kind, item))
            for ident, kind, trace_id, item in items
        ]

    def _pending_rows(self, limit: int, kinds: Sequence[str]) -> list[tuple[int, str, Any]]:
        with self._lock:
            rows = self.db.execute(
                "SELECT o.id, o.kind, COALESCE(o.payload, t.record), t.input_refs, "
                + ",".join(f"t.{c}" for c in IN_COLUMNS)
                + " FROM outbox o LEFT JOIN traces t ON o.payload IS NULL AND t.trace_id = o.trace_id"
                " WHERE o.kind IN (SELECT value FROM json_each(?)) ORDER BY o.id LIMIT ?",
                (json.dumps(list(kinds)), limit),
            ).fetchall()
        items = [[ident, kind, None if payload is None else json.loads(payload)] for ident, kind, payload, *_ in rows]
        split = [(item[2], json.loads(row[3])) for item, row in zip(items, rows, strict=True) if row[3] is not None]
        blobs.fill_inputs(self, [record for record, _ in split], [refs for _, refs in split])
        for item, row in zip(items, rows, strict=True):
            if item[1] != "score" and item[2] is not None:
                with_columns(item[2], row[4:])
        return [(ident, kind, None if item is None else _built(kind, item)) for ident, kind, item in items]

    def acknowledge(self, ids: Iterable[int]) -> None:
        """Delivered ids are usually one unbroken run of the oldest rows: then a range delete does it."""
        unique = set(ids)
        if not unique:
            return
        low, high = min(unique), max(unique)
        with self._lock, self._writes.held():
            if high - low + 1 == len(unique):
                self.db.execute("DELETE FROM outbox WHERE id BETWEEN ? AND ?", (low, high))
            else:
                self.db.execute(
                    "DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(sorted(unique)),)
                )

    def mark_attempt(self, ids: Iterable[int]) -> None:
        with self._lock, self._writes.held():
            self.db.execute(
                "UPDATE outbox SET attempts = attempts + 1 WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(ids)),),
            )

    def backlog(self, kinds: Sequence[str] = ALL_KINDS) -> int:
        with self._lock:
            sql = "SELECT COUNT(*) FROM outbox WHERE kind IN (SELECT value FROM json_each(?))"
            return int(self.db.execute(sql, (json.dumps(list(kinds)),)).fetchone()[0])

    def prune(self, retention_days: float) -> int:
        """The newest row of each table is kept whatever its age: SQLite would give its rowid to the next row,
        and the shipper's cursor (rowids only grow) would take that row for shipped."""
        cutoff = time.time() - retention_days * 86400
        with self._lock, self._writes.held():
            cur = self.db.execute(
                "DELETE FROM traces WHERE start_time < ? AND rowid < (SELECT MAX(rowid) FROM traces)", (cutoff,)
            )
            self.db.execute(
                "DELETE FROM scores WHERE created < ? AND rowid < (SELECT MAX(rowid) FROM scores)", (cutoff,)
            )
            self.db.execute(blobs.SWEEP)  # the blocks no kept call can refer to (see blobs)
            return int(cur.rowcount)

    # --- reads -----------------------------------------------------------------------------------------

    def spend_by_key(self, since: float) -> dict[str, float]:
        """USD spent per virtual key since a time: seeds budget counters after a restart."""
        with self._lock:
            rows = self.db.execute(
                "SELECT key_id, SUM(COALESCE(cost_total, 0)) FROM traces WHERE key_id IS NOT NULL AND start_time >= ?"
                " GROUP BY key_id",
                (since,),
            ).fetchall()
        return {row[0]: float(row[1]) for row in rows}

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(row) for row in self.db.execute(sql, params).fetchall()]
