"""The embedded local store: SQLite in the data dir, holding every call and the export outbox.

One file, WAL mode, migrations as an ordered list (simonw/llm's habit). The outbox lives in the same
database as the traces so a call is stored and queued for Langfuse in one transaction: after a restart,
whatever Langfuse has not acknowledged is still there. All methods are synchronous; the pipeline runs
them on its own thread.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .. import jsoncodec
from ..types import CallRecord
from .records import record_from_json, record_to_json, summary_row

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
]

SUMMARY_COLUMNS = list(summary_row(CallRecord(trace_id="0" * 32, route="", start_time=0.0)))
_ROW_COLUMNS = [*SUMMARY_COLUMNS, "record"]
_INSERT_TRACES = (
    f"INSERT OR REPLACE INTO traces ({','.join(_ROW_COLUMNS)}) SELECT "
    + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(_ROW_COLUMNS)))
    + " FROM json_each(?)"
)
# Trace rows carry no payload: the exporter reads the record from `traces` (half the bytes written).
_INSERT_OUTBOX = (
    "INSERT INTO outbox (kind, trace_id, payload, created) SELECT 'trace', json_extract(value, '$[0]'), NULL, ? "
    "FROM json_each(?)"
)


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA busy_timeout=5000")  # first: workers open the same file at the same moment
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    def _migrate(self) -> None:
        """Apply pending migrations in one IMMEDIATE transaction, so workers starting together don't race."""
        with self._lock:
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

    # --- writes ----------------------------------------------------------------------------------------

    def write(self, records: Sequence[CallRecord], *, outbox: bool, max_outbox: int) -> int:
        """Store records and, when exporting, queue them; returns how many outbox rows were dropped.

        One statement per table for the whole batch (rows travel as one JSON array through json_each):
        executemany would release and re-take the GIL at every row, and against a busy event loop each
        re-take can wait a whole switch interval, which starved the writer under load.
        """
        if not records:
            return 0
        rows = []
        for record in records:
            row = summary_row(record)
            row["record"] = record_to_json(record)
            rows.append([row[c] for c in _ROW_COLUMNS])
        batch = jsoncodec.dumps_str(rows)
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute(_INSERT_TRACES, (batch,))
                dropped = 0
                if outbox:
                    self.db.execute(_INSERT_OUTBOX, (time.time(), batch))
                    dropped = self._bound_outbox(max_outbox)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return dropped

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
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute(
                    "INSERT OR REPLACE INTO scores (id, trace_id, name, value, data_type, comment, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        score["id"],
                        score["traceId"],
                        score["name"],
                        str(score["value"]),
                        score["dataType"],
                        score.get("comment"),
                        time.time(),
                    ),
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

    def pending(self, limit: int) -> list[tuple[int, str, Any]]:
        """The oldest undelivered rows, decoded here on the store's thread: (id, kind, CallRecord | score).

        A trace row points at its stored record; one whose record was pruned meanwhile comes back as None.
        """
        with self._lock:
            rows = self.db.execute(
                "SELECT o.id, o.kind, COALESCE(o.payload, t.record) FROM outbox o "
                "LEFT JOIN traces t ON o.kind = 'trace' AND t.trace_id = o.trace_id ORDER BY o.id LIMIT ?",
                (limit,),
            ).fetchall()
        out: list[tuple[int, str, Any]] = []
        for ident, kind, payload in rows:
            if payload is None:
                out.append((ident, kind, None))
            else:
                out.append((ident, kind, record_from_json(payload) if kind == "trace" else jsoncodec.loads(payload)))
        return out

    def acknowledge(self, ids: Iterable[int]) -> None:
        with self._lock:
            self.db.execute("DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(list(ids)),))

    def mark_attempt(self, ids: Iterable[int]) -> None:
        with self._lock:
            self.db.execute(
                "UPDATE outbox SET attempts = attempts + 1 WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(ids)),),
            )

    def backlog(self) -> int:
        with self._lock:
            return int(self.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def prune(self, retention_days: float) -> int:
        cutoff = time.time() - retention_days * 86400
        with self._lock:
            cur = self.db.execute("DELETE FROM traces WHERE start_time < ?", (cutoff,))
            self.db.execute("DELETE FROM scores WHERE created < ?", (cutoff,))
            return cur.rowcount

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
