"""The local store's INSERTs of traces rows, in two forms: wide (every column bound) and narrow (the columns
that hold their default for almost every call written into the statement as constants).

Rows are bound as parameters of multi-row INSERTs, and binding is most of an insert's cost that depends on
the row: the sqlite3 module converts and binds each value on its own. A short call's row has 12 columns at
their default (no error, no cost parts billed at their own rate, no tool calls, subagent, retries, re-send,
repository or branch, its input inline): written as constants, they bind nothing (40 values a row down to 28:
~3 µs a row less in SQLite, measured). A row with any of them set takes the wide form; both store the same
values, which tests/tracing/test_store.py checks column by column and type by type.

Each form has statements of a few row counts (largest first, as SQLite's limit on parameters allows), so a
batch of any size takes a few statements SQLite has compiled before (compiling one costs ~15 µs a row).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Any

from .records import SUMMARY_COLUMNS

COLUMNS = (*SUMMARY_COLUMNS, "record", "input_refs")  # a row: summary_values, then blobs.stored_row
WIDTH = len(COLUMNS)
# The narrow form's constants: what these columns hold for a call without them. A value equal to its constant
# is stored the same as the constant would be (None only equals None; 0 and 0.0 land as the column's type).
DEFAULTS: dict[str, Any] = {
    "error_type": None,
    "cost_cache_read": 0.0,
    "cost_cache_write": 0.0,
    "cost_cache_write_1h": 0.0,
    "cost_reasoning": 0.0,
    "tool_calls": None,
    "subagent": None,
    "retries": 0,
    "resent": 0,
    "repo": None,
    "branch": None,
    "input_refs": None,
}
CHUNKS = (512, 256, 128, 64, 32, 16, 8, 4, 2, 1)
_rare = itemgetter(*(COLUMNS.index(name) for name in DEFAULTS))
_RARE_DEFAULTS = tuple(DEFAULTS.values())
_common = itemgetter(*(i for i, name in enumerate(COLUMNS) if name not in DEFAULTS))
NARROW_WIDTH = WIDTH - len(DEFAULTS)

_HEAD = f"INSERT OR REPLACE INTO traces ({','.join(COLUMNS)}) VALUES "
_WIDE_ROW = "(" + ",".join("?" * WIDTH) + ")"


def _constant(value: Any) -> str:
    return "NULL" if value is None else repr(value)


_NARROW_ROW = "(" + ",".join(_constant(DEFAULTS[name]) if name in DEFAULTS else "?" for name in COLUMNS) + ")"


@functools.cache  # the same text object each time: the statement cache finds it without rehashing ~30 KB
def insert_sql(rows: int, narrow: bool) -> str:
    return _HEAD + ",".join([_NARROW_ROW if narrow else _WIDE_ROW] * rows)


def split(rows: Iterable[Sequence[Any]], ordered: bool = False) -> tuple[list[Any], list[Any]]:
    """(narrow parameters, wide parameters): each row's values in the form it takes, rows in their order;
    all of them wide when `ordered` (one run, in order)."""
    narrow: list[Any] = []
    wide: list[Any] = []
    for row in rows:
        if not ordered and _rare(row) == _RARE_DEFAULTS:
            narrow.extend(_common(row))
        else:
            wide.extend(row)
    return narrow, wide


def statements(params: list[Any], narrow: bool, chunks: Sequence[int]) -> Iterable[tuple[str, list[Any]]]:
    """(SQL, its parameters) for rows in one form, in chunks of the sizes `chunks` allows."""
    width = NARROW_WIDTH if narrow else WIDTH
    rows = len(params) // width
    start = 0
    for size in chunks:
        while rows - start >= size:
            yield insert_sql(size, narrow), params[start * width : (start + size) * width]
            start += size
