"""The local store's side of shipping to a shared store: rows past a cursor per target, by rowid.

INSERT OR REPLACE gives a replaced row a new rowid, so a row written again is shipped again (PostgreSQL
ignores a trace id it holds). Part of `store.Store`, kept apart by what it does.
"""

from __future__ import annotations

import threading
from typing import Any

from .records import SUMMARY_COLUMNS
from .storage import SCORE_COLUMNS
from .writelock import WriteLock


class ShippingCursor:
    db: Any  # the store's sqlite3 connection (the library stays in store.py)
    _lock: threading.Lock
    _writes: WriteLock  # the cross-process write lock: writers queue in the kernel, not in SQLite's busy handler

    def unshipped(self, target: str, limit: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """The oldest trace rows (rowid, summary columns…, record, input_refs) and score rows (rowid,
        SCORE_COLUMNS…) not yet shipped to `target`."""
        with self._lock:
            traces, scores = self._cursor(target)
            trace_rows = self.db.execute(
                f"SELECT rowid, {','.join(SUMMARY_COLUMNS)}, record, input_refs FROM traces WHERE rowid > ?"
                " ORDER BY rowid LIMIT ?",
                (traces, limit),
            ).fetchall()
            score_rows = self.db.execute(
                f"SELECT rowid, {SCORE_COLUMNS} FROM scores WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (scores, limit),
            ).fetchall()
        return [tuple(r) for r in trace_rows], [tuple(r) for r in score_rows]

    def mark_shipped(self, target: str, traces: int, scores: int) -> None:
        with self._lock, self._writes.held():
            self.db.execute(
                "INSERT INTO shipping (target, traces, scores) VALUES (?, ?, ?) ON CONFLICT (target) DO UPDATE"
                " SET traces = MAX(traces, excluded.traces), scores = MAX(scores, excluded.scores)",
                (target, traces, scores),
            )

    def ship_backlog(self, target: str) -> int:
        """Rows not yet shipped: a rowid range count, cheap while the shipper keeps up."""
        with self._lock:
            traces, scores = self._cursor(target)
            return int(
                self.db.execute("SELECT COUNT(*) FROM traces WHERE rowid > ?", (traces,)).fetchone()[0]
                + self.db.execute("SELECT COUNT(*) FROM scores WHERE rowid > ?", (scores,)).fetchone()[0]
            )

    def _cursor(self, target: str) -> tuple[int, int]:
        row = self.db.execute("SELECT traces, scores FROM shipping WHERE target = ?", (target,)).fetchone()
        return (row[0], row[1]) if row else (0, 0)
