"""The trace store seam: what the read API, the dashboard, budgets and the shipper need of a store.

Two implementations: `store.Store` (SQLite in the data dir, the default, which also holds the export outbox)
and `pgstore.PostgresStore` (the state several instances share). `tests/tracing/test_store_conformance.py`
runs the same suite against both. The read queries (`queries`, `stats`) are plain SQL both accept; the few
expressions the engines spell differently come from the store's `Dialect`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ..types import CallRecord


@dataclass(frozen=True)
class Dialect:
    day: str  # the UTC day of start_time, as YYYY-MM-DD
    hour: str  # the UTC hour of start_time, as YYYY-MM-DDTHH:00
    concat_distinct: str  # distinct values of one column joined by commas; `{}` is the column

    def bucket(self, name: str) -> str:
        if name == "day":
            return self.day
        if name == "hour":
            return self.hour
        raise ValueError(f"unknown bucket {name!r}")


SQLITE = Dialect(
    day="date(start_time, 'unixepoch')",
    hour="strftime('%Y-%m-%dT%H:00', start_time, 'unixepoch')",
    concat_distinct="GROUP_CONCAT(DISTINCT {})",
)
_UTC = "(to_timestamp(start_time) AT TIME ZONE 'UTC')"
POSTGRES = Dialect(
    day=f"to_char({_UTC}, 'YYYY-MM-DD')",
    hour=f"to_char({_UTC}, 'YYYY-MM-DD\"T\"HH24:00')",
    concat_distinct="string_agg(DISTINCT {}, ',')",
)


T = TypeVar("T")


def started(part: T | None) -> T:
    """A store, once the trace pipeline has started and made it; asked for before then, a bug to surface."""
    if part is None:
        raise RuntimeError("trace pipeline not started")
    return part


SCORE_COLUMNS = "id, trace_id, name, value, data_type, comment, created"


def score_row(score: dict[str, Any]) -> tuple[Any, ...]:
    """A score (the API's camelCase JSON) as either store keeps it, in SCORE_COLUMNS order: the value as text
    whatever its data type, and the time it was recorded here."""
    return (
        score["id"],
        score["traceId"],
        score["name"],
        str(score["value"]),
        score["dataType"],
        score.get("comment"),
        time.time(),
    )


class TraceStore(Protocol):
    dialect: Dialect

    def write(self, records: Sequence[CallRecord], *, outbox: bool, max_outbox: int) -> int:
        """Store records (a trace id already stored is left as it is, or replaced by the same record)."""
        ...

    def add_score(self, score: dict[str, Any], *, outbox_payload: str | None) -> None: ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a read query written with `?` placeholders, as dicts."""
        ...

    def spend_by_key(self, since: float) -> dict[str, float]:
        """USD spent per virtual key since `since`, a UTC day boundary."""
        ...

    def prune(self, retention_days: float) -> int: ...

    def close(self) -> None: ...
