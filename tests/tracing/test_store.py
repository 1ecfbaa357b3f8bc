"""The local store's batch paths: what `write` stores, what `pending` hands the exporter, what `acknowledge` removes.

The write binds rows as parameters and the exporter reads a whole batch back as one JSON text; both must keep
what the per-column JSON path stored and what decoding each record on its own returned, including values
JSON libraries disagree on (integers beyond 64 bits, NaN, infinities) and odd types in the summary columns.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_scope.tracing import blobs, queries, traceinsert
from llm_scope.tracing.records import record_from_json, record_to_json, summary_row, summary_values
from llm_scope.tracing.store import MIGRATIONS, SUMMARY_COLUMNS, Store
from llm_scope.types import CallRecord, Cost, Usage

# The write path before rows were bound as parameters: one JSON array per batch, a json_extract per column.
_OLD_COLUMNS = [*SUMMARY_COLUMNS, "record"]


def _insert_of(columns: list[str]) -> str:
    """How an older version inserted its rows: one JSON array of rows, each in `columns` order."""
    picks = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(columns)))
    return f"INSERT OR REPLACE INTO traces ({','.join(columns)}) SELECT {picks} FROM json_each(?)"


_OLD_INSERT = _insert_of(_OLD_COLUMNS)


class Shown:
    """A value of a type SQLite cannot bind: stored as its text, as the JSON encoder's default=str made it."""

    def __str__(self) -> str:
        return "shown"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "store.db")
    yield s
    s.close()


def make(n: int, **fields: Any) -> CallRecord:
    start = 1_750_000_000.123456 + n
    defaults: dict[str, Any] = {
        "trace_id": f"{n:032x}",
        "route": "chat_completion",
        "start_time": start,
        "end_time": start + 0.35,
        "requested_model": "gpt-4o-mini",
        "resolved_model": "gpt-4o-mini",
        "provider": "openai",
        "model_parameters": {"max_tokens": 32},
        "input": [{"role": "user", "content": f"hello {n} é ☕"}],
        "output": {"role": "assistant", "content": "Hello! How can I help?"},
        "usage": Usage(input=12, output=9, total=21),
        "cost": Cost(input=1.8e-06, output=5.4e-06, total=7.2e-06),
    }
    defaults.update(fields)
    return CallRecord(**defaults)


def long_input(n: int) -> list[dict[str, str]]:
    """An input past records.INLINE_MAX: stored as blocks (a shorter one is kept inline in its record)."""
    return [{"role": "user", "content": f"hello {n} é ☕ " * 100}]


def varied() -> list[CallRecord]:
    return [
        make(1),
        make(2, cost=None, stream=True, completion_start_time=1_750_000_002.2, upstream_latency=0.3),
        make(3, user_id="u", session_id="s", key_id="k", metadata={"tags": ["a"], "n": 1}),
        make(4, status_code=502, error_type="upstream_error", error_message="boom", output=None),
        make(5, usage=Usage(input=10, output=2, total=12, cache_read=4, cache_write=1, reasoning=3)),
        make(6, input=None, output=None, metadata={}),
    ]


def old_decode(record: CallRecord) -> CallRecord:
    """What the exporter got before: the stored JSON of each record decoded on its own."""
    return record_from_json(record_to_json(record))


def drain(store: Store) -> list[tuple[int, str, Any]]:
    rows = store.pending(10_000)
    store.acknowledge([ident for ident, _, _ in rows])
    return rows


def test_pending_returns_each_record_as_decoding_it_alone_did(store: Store) -> None:
    records = varied()
    store.write(records, outbox=True, max_outbox=100)
    rows = store.pending(100)
    assert [kind for _, kind, _ in rows] == ["trace"] * len(records)
    assert [item for _, _, item in rows] == [old_decode(r) for r in records]
    assert [ident for ident, _, _ in rows] == sorted(ident for ident, _, _ in rows)


def test_batches_of_any_size_are_stored_whole_and_queued_in_order(store: Store) -> None:
    for size in (1, 3, 255, 256, 257, 700):
        batch = [make(10_000 * size + i) for i in range(size)]
        store.write(batch, outbox=True, max_outbox=10_000)
        rows = drain(store)
        assert [item.trace_id for _, _, item in rows] == [r.trace_id for r in batch]
    assert store.query("SELECT COUNT(*) AS n FROM traces")[0]["n"] == 1 + 3 + 255 + 256 + 257 + 700
    assert store.write([], outbox=True, max_outbox=10) == 0


def test_a_trace_id_written_twice_in_a_batch_keeps_the_last(store: Store) -> None:
    first, second = make(7, route="first"), make(7, route="second")
    store.write([first, second], outbox=True, max_outbox=10)
    assert [row["route"] for row in store.query("SELECT route FROM traces")] == ["second"]
    assert [item.route for _, _, item in drain(store)] == ["second", "second"]
    # The first in the wide form (an error type), the second in the narrow one (see traceinsert).
    first, second = make(8, route="first", error_type="x"), make(8, route="second")
    store.write([first, second], outbox=True, max_outbox=10)
    assert [row["route"] for row in store.query("SELECT route FROM traces WHERE trace_id = ?", [first.trace_id])] == [
        "second"
    ]


def test_summary_columns_are_what_the_json_path_stored(tmp_path: Path, store: Store) -> None:
    """Including values JSON and SQLite binding see differently: they must land the same in the table."""
    records = [
        *varied(),
        make(20, usage=Usage(input=2**70, output=1, total=2**70 + 1)),  # beyond 64 bits: a REAL, as before
        make(21, cost=Cost(input=math.inf, output=1.0, total=math.inf)),  # JSON had no infinity: NULL
        make(22, cost=Cost(input=math.nan, output=1.0, total=math.nan)),
        make(23, user_id=Shown(), stream=True, status_code=True),  # type: ignore[arg-type]
    ]
    store.write(records, outbox=False, max_outbox=10)
    with sqlite3.connect(tmp_path / "old.db") as old:
        old.executescript(
            "CREATE TABLE traces (trace_id TEXT PRIMARY KEY, start_time REAL NOT NULL, end_time REAL, route TEXT,"
            " user_id TEXT, session_id TEXT, client TEXT, requested_model TEXT, resolved_model TEXT, provider TEXT,"
            " status_code INTEGER, error_type TEXT, stream INTEGER, input_tokens INTEGER, output_tokens INTEGER,"
            " total_tokens INTEGER, cache_read_tokens INTEGER, cache_write_tokens INTEGER, reasoning_tokens INTEGER,"
            " cost_input REAL, cost_output REAL, cost_total REAL, duration_ms REAL, ttft_ms REAL, upstream_ms REAL,"
            " record TEXT NOT NULL, key_id TEXT, cost_cache_read REAL, cost_cache_write REAL,"
            " cost_cache_write_1h REAL, cost_reasoning REAL, tool_calls TEXT, subagent TEXT, retries INTEGER,"
            " resent INTEGER, request_digest TEXT, repo TEXT, branch TEXT, session_derived INTEGER)"
        )
        for record in records:  # one at a time: the big integer sent a whole batch through the slow encoder
            row = summary_row(record)
            row["record"] = record_to_json(record)
            values = [row[c] for c in _OLD_COLUMNS]
            try:
                batch = json.dumps([values], allow_nan=False, default=str)
            except ValueError:
                batch = json.dumps([[None if isinstance(v, float) and not math.isfinite(v) else v for v in values]])
            old.execute(_OLD_INSERT, (batch,))
        columns = ", ".join(f"{c}, typeof({c})" for c in SUMMARY_COLUMNS)
        expected = old.execute(f"SELECT {columns} FROM traces ORDER BY trace_id").fetchall()
        expected_records = [row[0] for row in old.execute("SELECT record FROM traces ORDER BY trace_id")]
    got = store.db.execute(f"SELECT {columns} FROM traces ORDER BY trace_id").fetchall()
    assert [tuple(row) for row in got] == expected
    # The record's input is kept as blocks now, and the fields its columns hold in them; put back, the record
    # is what the JSON path stored. But for odd types, which come back as their columns hold them.
    rows = store.query("SELECT * FROM traces ORDER BY trace_id")
    read = [blobs.record_of(store, row) for row in rows]
    assert [json.dumps(record, sort_keys=True) for record in read[:-1]] == [
        json.dumps(json.loads(text), sort_keys=True) for text in expected_records[:-1]
    ]
    assert (read[-1]["user_id"], read[-1]["status_code"], read[-1]["stream"]) == ("shown", 1, True)


def test_integers_beyond_64_bits_and_nan_survive_write_and_pending(store: Store) -> None:
    huge = 2**70 + 1
    records = [
        make(30, model_parameters={"seed": huge}),
        make(31, model_parameters={"seed": huge, "temperature": math.nan}, metadata={"n": -(2**65)}),
        make(32, model_parameters={"temperature": math.nan}),  # orjson writes NaN as null, as it always did
        make(33, usage=Usage(input=huge, output=1, total=huge + 1)),
        make(34),
    ]
    store.write(records, outbox=True, max_outbox=10)
    got = [item for _, _, item in drain(store)]
    assert got[0].model_parameters == {"seed": huge} and isinstance(got[0].model_parameters["seed"], int)
    assert math.isnan(got[1].model_parameters["temperature"]) and got[1].model_parameters["seed"] == huge
    assert got[1].metadata == {"n": -(2**65)}
    assert got[2].model_parameters == {"temperature": None}
    assert got[3].usage.input == huge and isinstance(got[3].usage.input, int)
    for before, after in zip(records, got, strict=True):
        assert record_to_json(after) == record_to_json(old_decode(before))


def test_a_pruned_record_comes_back_as_none_and_scores_as_their_payload(store: Store) -> None:
    old, kept = make(40, start_time=time.time() - 40 * 86400), make(41, start_time=time.time())
    store.write([old, kept], outbox=True, max_outbox=10)
    score = {"id": "s1", "traceId": kept.trace_id, "name": "quality", "value": 0.5, "dataType": "NUMERIC"}
    store.add_score(score, outbox_payload=json.dumps(score))
    assert store.prune(30) == 1
    rows = store.pending(10)
    assert [(kind, item) for _, kind, item in rows] == [("trace", None), ("trace", old_decode(kept)), ("score", score)]
    assert store.pending(2) == rows[:2]


def test_acknowledge_removes_exactly_the_ids_given(store: Store) -> None:
    store.write([make(50 + i) for i in range(8)], outbox=True, max_outbox=100)
    ids = [ident for ident, _, _ in store.pending(100)]
    store.acknowledge([])
    store.acknowledge(iter([ids[1], ids[3], ids[3]]))  # gaps and a repeat
    store.acknowledge(ids[5:7])  # a run
    assert [ident for ident, _, _ in store.pending(100)] == [ids[0], ids[2], ids[4], ids[7]]
    store.acknowledge(ids)
    assert store.pending(100) == [] and store.backlog() == 0


def test_the_outbox_bound_drops_the_oldest(store: Store) -> None:
    assert store.write([make(60 + i) for i in range(5)], outbox=True, max_outbox=3) == 2
    assert [item.trace_id for _, _, item in store.pending(10)] == [make(60 + i).trace_id for i in (2, 3, 4)]


def test_pending_and_acknowledge_run_one_statement_each_however_big_the_batch(store: Store) -> None:
    """Every row fetched is a GIL hand-off on the store's thread: a batch must not cost one per record."""
    store.write([make(70 + i, input=long_input(i)) for i in range(300)], outbox=True, max_outbox=1000)
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    try:
        rows = store.pending(500)
        store.acknowledge([ident for ident, _, _ in rows])
    finally:
        store.db.set_trace_callback(None)
    assert len(rows) == 300 and store.backlog() == 0
    # The whole batch comes back as one row, its inputs' blocks as another (up to 500 blocks a statement).
    assert len(statements) == 3 and "group_concat" in statements[0] and "FROM blobs" in statements[1]


def test_an_older_sqlite_with_fewer_parameters_takes_smaller_statements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect = sqlite3.connect

    def old_sqlite(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db = connect(*args, **kwargs)
        db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)  # the default before SQLite 3.32
        return db

    monkeypatch.setattr(sqlite3, "connect", old_sqlite)
    store = Store(tmp_path / "old-sqlite.db")
    try:
        batch = [make(80 + i) for i in range(100)]
        store.write(batch, outbox=True, max_outbox=1000)
        assert [item.trace_id for _, _, item in drain(store)] == [r.trace_id for r in batch]
    finally:
        store.close()


def test_a_batch_beyond_sqlites_string_limit_is_read_row_by_row(store: Store) -> None:
    records = varied()
    store.write(records, outbox=True, max_outbox=100)
    score = {"id": "s2", "traceId": records[0].trace_id, "name": "q", "value": 1, "dataType": "NUMERIC"}
    store.add_score(score, outbox_payload=json.dumps(score))
    whole = store.pending(100)
    store.db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 3000)  # more than any one record, less than the batch
    assert store.pending(100) == whole
    assert [item for _, _, item in whole] == [*(old_decode(r) for r in records), score]


def test_records_the_caller_still_holds_come_back_as_those_objects(store: Store) -> None:
    """The exporter passes what it just wrote; the rest (another worker's, older ones) is read back as before."""
    now = time.time()
    held, other = make(80, start_time=now), make(81, start_time=now, user_id="another worker")
    old = make(82, start_time=now - 40 * 86400)
    store.write([old, held, other], outbox=True, max_outbox=100)
    score = {"id": "s2", "traceId": held.trace_id, "name": "ok", "value": 1, "dataType": "NUMERIC"}
    store.add_score(score, outbox_payload=json.dumps(score))
    store.prune(30)  # `old` is gone from the store: None, even though the caller still holds it
    rows = store.pending(10, {held.trace_id: held, old.trace_id: old})
    assert [kind for _, kind, _ in rows] == ["trace", "trace", "trace", "score"]
    assert rows[0][2] is None
    assert rows[1][2] is held  # the very object, not a copy read back
    assert rows[2][2] == old_decode(other) and rows[2][2] is not other
    assert rows[3][2] == score
    assert [ident for ident, _, _ in rows] == [ident for ident, _, _ in store.pending(10)]


def test_a_store_from_before_blocks_migrates_and_reads_its_inline_rows(tmp_path: Path) -> None:
    """Rows written before inputs were kept as blocks keep their input inline: read as before, after the
    migration, beside rows written now; and the exporter's read-back gets both whole."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        for number, script in enumerate(MIGRATIONS[:5], start=1):  # the schema before blocks
            old.executescript(script + f";PRAGMA user_version={number};")
        row = summary_row(inline := make(1))
        row["record"] = record_to_json(inline)
        had = {r[1] for r in old.execute("PRAGMA table_info(traces)")}  # the columns of that schema only
        columns = [c for c in _OLD_COLUMNS if c in had]
        old.execute(_insert_of(columns), (json.dumps([[row[c] for c in columns]]),))
        old.execute(
            "INSERT INTO outbox (kind, trace_id, payload, created) VALUES ('trace', ?, NULL, 0)", (row["trace_id"],)
        )
    store = Store(path)
    try:
        store.write([now := make(2, input=long_input(2))], outbox=True, max_outbox=10)
        assert [r["input_refs"] is None for r in store.query("SELECT input_refs FROM traces ORDER BY trace_id")] == [
            True,
            False,
        ]
        for call in (inline, now):
            assert (found := queries.get_trace(store, call.trace_id)) is not None and found["input"] == call.input
        assert [item.input for _, _, item in drain(store)] == [inline.input, now.input]
    finally:
        store.close()


def test_a_row_in_the_narrow_form_is_stored_as_the_wide_form_stores_it(store: Store) -> None:
    """traceinsert: a row whose rarely set columns hold their defaults binds only the others; the same row bound
    whole lands the same, value for value and type for type, and reads back the same (API and exporter)."""
    short, other = make(80), make(81)
    rows = [(*summary_values(r), *blobs.stored_row(r, {})) for r in (short, other)]
    narrow, wide = traceinsert.split(rows)
    assert len(narrow) == 2 * traceinsert.NARROW_WIDTH and wide == []  # both short calls: narrow
    store.db.execute(traceinsert.insert_sql(1, True), narrow[: traceinsert.NARROW_WIDTH])
    store.db.execute(traceinsert.insert_sql(1, False), [*rows[1][:1], *rows[0][1:]])  # `short`'s row, bound whole
    columns = ", ".join(f"{c}, typeof({c})" for c in traceinsert.COLUMNS[1:])
    got = store.db.execute(f"SELECT {columns} FROM traces ORDER BY trace_id").fetchall()
    assert got[0] == got[1] and None in got[0] and 0.0 in got[0]
    served = [queries.get_trace(store, r.trace_id) for r in (short, other)]
    assert served[0] is not None and served[1] is not None
    assert {**served[0], "trace_id": ""} == {**served[1], "trace_id": ""} and served[0]["input"] == short.input
    # Any rarely set column off its default takes the wide form.
    for changed in (make(82, error_type="x"), make(83, repo="r"), make(84, cost=Cost(1.0, 1.0, 2.0, cache_read=0.5))):
        narrow, wide = traceinsert.split([(*summary_values(changed), *blobs.stored_row(changed, {}))])
        assert narrow == [] and len(wide) == traceinsert.WIDTH
