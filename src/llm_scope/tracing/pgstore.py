"""The shared trace store in PostgreSQL: every instance's calls, scores and per-key spend in one place.

Instances never write here on a request path: each one's trace helper stores calls in its local SQLite
first and ships them here (`shipping`). Writes are idempotent by trace id (`ON CONFLICT DO NOTHING`), so a
batch sent again after a crash or a lost answer changes nothing, and the per-key daily spend the budgets
read is added in the same statement, from the rows that statement actually inserted: a call is counted
once however often it is shipped. Reads take the same SQL as the SQLite store (see `storage`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..postgres import Database
from ..types import CallRecord
from . import blobs
from .callfacts import COLUMNS as FACT_COLUMNS
from .records import SUMMARY_COLUMNS, summary_values
from .storage import POSTGRES, SCORE_COLUMNS, score_row

_REAL = "DOUBLE PRECISION"
MIGRATIONS: list[str] = [
    f"""
    CREATE TABLE traces (
        trace_id TEXT PRIMARY KEY, start_time {_REAL} NOT NULL, end_time {_REAL}, route TEXT,
        user_id TEXT, session_id TEXT, client TEXT, requested_model TEXT, resolved_model TEXT, provider TEXT,
        status_code INTEGER, error_type TEXT, stream INTEGER,
        input_tokens BIGINT, output_tokens BIGINT, total_tokens BIGINT, cache_read_tokens BIGINT,
        cache_write_tokens BIGINT, reasoning_tokens BIGINT,
        cost_input {_REAL}, cost_output {_REAL}, cost_total {_REAL},
        duration_ms {_REAL}, ttft_ms {_REAL}, upstream_ms {_REAL}, key_id TEXT, record TEXT NOT NULL
    );
    CREATE INDEX traces_start ON traces(start_time);
    CREATE INDEX traces_user ON traces(user_id, start_time);
    CREATE INDEX traces_session ON traces(session_id, start_time);
    CREATE INDEX traces_model ON traces(resolved_model, start_time);
    CREATE INDEX traces_key ON traces(key_id, start_time);
    CREATE TABLE scores (
        id TEXT PRIMARY KEY, trace_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
        data_type TEXT NOT NULL, comment TEXT, created {_REAL} NOT NULL
    );
    CREATE INDEX scores_trace ON scores(trace_id);
    CREATE TABLE key_spend (
        key_id TEXT NOT NULL, day DATE NOT NULL, usd {_REAL} NOT NULL DEFAULT 0, calls BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (key_id, day)
    );
    """,
    blobs.POSTGRES_MIGRATION,  # each distinct input block once; rows before it keep their input inline
    # The cost's parts per call, as in the SQLite store; taken for rows stored before from their record, except
    # a record jsonb would refuse (NaN, Infinity, NUL), whose parts stay NULL: unknown, not $0.
    f"""
    ALTER TABLE traces ADD COLUMN cost_cache_read {_REAL}, ADD COLUMN cost_cache_write {_REAL},
        ADD COLUMN cost_cache_write_1h {_REAL}, ADD COLUMN cost_reasoning {_REAL};
    UPDATE traces SET cost_cache_read = COALESCE((record::jsonb #>> '{{cost,cache_read}}')::float8, 0),
        cost_cache_write = COALESCE((record::jsonb #>> '{{cost,cache_write}}')::float8, 0),
        cost_cache_write_1h = COALESCE((record::jsonb #>> '{{cost,cache_write_1h}}')::float8, 0),
        cost_reasoning = COALESCE((record::jsonb #>> '{{cost,reasoning}}')::float8, 0)
        WHERE cost_total IS NOT NULL AND CASE WHEN record ~ '(NaN|Infinity|\\\\u0000)' THEN false
        ELSE jsonb_typeof(record::jsonb -> 'cost') = 'object' END;
    """,
    # Session facts (callfacts, autosession); `traces_auto` finds a fallback session's open run.
    "ALTER TABLE traces " + ", ".join(f"ADD COLUMN {name} {kind}" for name, kind in FACT_COLUMNS) + ";"
    "CREATE INDEX traces_auto ON traces(client, start_time) WHERE session_derived = 1;",
]

_COLUMNS = [*SUMMARY_COLUMNS, "record", "input_refs"]
_TEXT = (
    frozenset(("trace_id", "route", "user_id", "session_id", "client", "requested_model", "resolved_model", "provider"))
    | {"error_type", "key_id", "record", "input_refs"}
    | {name for name, kind in FACT_COLUMNS if kind == "TEXT"}
)
_INT = (
    {"status_code", "stream"}
    | {name for name in SUMMARY_COLUMNS if name.endswith("_tokens")}
    | {name for name, kind in FACT_COLUMNS if kind == "INTEGER"}
)
_KINDS = tuple("text" if c in _TEXT else "int" if c in _INT else "real" for c in _COLUMNS)
_INT64 = range(-(2**63), 2**63)
_ROWS_PER_STATEMENT = 500  # 40 parameters a row, well under PostgreSQL's 65,535
_DAY = "(to_timestamp(start_time) AT TIME ZONE 'UTC')::date"


def _insert_sql(rows: int) -> str:
    """One statement inserts the rows and adds the spend of those it inserted (not the ones already there)."""
    values = ",".join(["(" + ",".join(["?"] * len(_COLUMNS)) + ")"] * rows)
    return (
        f"WITH new AS (INSERT INTO traces ({','.join(_COLUMNS)}) VALUES {values} "
        "ON CONFLICT (trace_id) DO NOTHING RETURNING key_id, start_time, cost_total), "
        f"spend AS (INSERT INTO key_spend (key_id, day, usd, calls) SELECT key_id, {_DAY}, "
        "SUM(COALESCE(cost_total, 0)), COUNT(*) FROM new WHERE key_id IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2 "
        "ON CONFLICT (key_id, day) DO UPDATE "
        "SET usd = key_spend.usd + EXCLUDED.usd, calls = key_spend.calls + EXCLUDED.calls) "
        "SELECT COUNT(*) FROM new"
    )


def _clean(value: Any, kind: str) -> Any:
    """What PostgreSQL can hold of a value SQLite took as it came (NUL in text, integers past 64 bits)."""
    if value is None:
        return None
    if kind == "text":
        text = value if isinstance(value, str) else str(value)
        return text.replace("\x00", "\ufffd") if "\x00" in text else text
    if kind == "int":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value if value in _INT64 else None
        if isinstance(value, float) and math.isfinite(value) and value in _INT64:
            return int(value)
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def clean_row(row: Sequence[Any]) -> list[Any]:
    return [_clean(value, kind) for value, kind in zip(row, _KINDS, strict=True)]


class PostgresStore:
    dialect = POSTGRES

    def __init__(self, url: str) -> None:
        self.db = Database(url, component="traces", migrations=MIGRATIONS)
        self.name = self.db.name

    def close(self) -> None:
        self.db.close()

    # --- writes ----------------------------------------------------------------------------------------

    def write(self, records: Sequence[CallRecord], *, outbox: bool = False, max_outbox: int = 0) -> int:
        """Store records as they are; there is no outbox here (each instance's local store keeps its own)."""
        pending: dict[str, str] = {}
        rows = [(*summary_values(record), *blobs.stored_row(record, pending)) for record in records]
        return self.write_rows(rows, pending)

    def write_rows(self, rows: Sequence[Sequence[Any]], blocks: Mapping[str, str] | None = None) -> int:
        """Rows in SUMMARY_COLUMNS order, then the record's JSON and its input's refs, and the blocks the refs
        name (key -> JSON), all in one transaction; returns how many rows were new. Every block is upserted,
        whatever this process sent before: see `blobs` on why that keeps them from the sweep."""
        statements: list[tuple[str, list[Any]]] = [
            (blobs.upsert_sql(size), values) for size, values in blobs.blob_params(blocks or {}, time.time())
        ]
        upserts = len(statements)  # the traces' statements count the new rows
        for start in range(0, len(rows), _ROWS_PER_STATEMENT):
            chunk = rows[start : start + _ROWS_PER_STATEMENT]
            statements.append((_insert_sql(len(chunk)), [v for row in chunk for v in clean_row(row)]))
        return sum(self.db.transaction(statements)[upserts:])

    def write_scores(self, rows: Sequence[Sequence[Any]]) -> None:
        """Score rows (in SCORE_COLUMNS order); a known id is replaced."""
        if not rows:
            return
        self.db.transaction(
            [
                (
                    f"INSERT INTO scores ({SCORE_COLUMNS}) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value, "
                    "data_type = EXCLUDED.data_type, comment = EXCLUDED.comment, created = EXCLUDED.created",
                    list(row),
                )
                for row in rows
            ]
        )

    def add_score(self, score: dict[str, Any], *, outbox_payload: str | None = None) -> None:
        self.write_scores([score_row(score)])

    def prune(self, retention_days: float) -> int:
        """Delete in batches of 10,000 rows, each its own short transaction: no long lock on the table."""
        cutoff = time.time() - retention_days * 86400
        deleted = 0
        while True:
            count = self.db.execute(
                "DELETE FROM traces WHERE trace_id IN "
                "(SELECT trace_id FROM traces WHERE start_time < ? ORDER BY start_time LIMIT 10000)",
                [cutoff],
            )
            deleted += max(count, 0)
            if count < 10000:
                break
        self.db.execute("DELETE FROM scores WHERE created < ?", [cutoff])
        self.db.execute(blobs.SWEEP)  # the blocks no kept call can refer to (see blobs)
        # Spend is kept for the budgets' month whatever the retention.
        self.db.execute("DELETE FROM key_spend WHERE day < ?::date", [_day_text(min(cutoff, time.time() - 62 * 86400))])
        return deleted

    # --- reads -----------------------------------------------------------------------------------------

    def spend_by_key(self, since: float) -> dict[str, float]:
        """From the per-day sums the writes keep, so budgets never scan the traces (`since` is a UTC midnight)."""
        rows = self.db.query(
            "SELECT key_id, SUM(usd) AS usd FROM key_spend WHERE day >= ?::date GROUP BY key_id", [_day_text(since)]
        )
        return {row["key_id"]: float(row["usd"]) for row in rows}

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self.db.query(sql, params)


def _day_text(at: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(at))
